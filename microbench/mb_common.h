/*
 * mb_common.h - helpers shared by the microbenchmarks (pipebench, handoff, scale, spurious):
 * error checking, the monotonic clock, pinning, order statistics, run conditions,
 * /proc/self/status fields, a writer process, CPU hog processes, the summary's bar lines, and a
 * watchdog that turns a hang into a precise report.
 */
#ifndef MB_COMMON_H
#define MB_COMMON_H

#include <stdatomic.h>
#include <stddef.h>
#include <sys/types.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

/* Print "what: strerror(errno)" and exit(1). For system calls that must not fail. */
__attribute__((noreturn, format(printf, 1, 2))) void mb_die(const char *fmt, ...);
/* Print the message (no errno) and exit(1). */
__attribute__((noreturn, format(printf, 1, 2))) void mb_fail(const char *fmt, ...);

/*
 * What the programs say while they run. stdout (the results) is line-buffered, so a line of it
 * is written whole and stderr can never split it. Progress goes to stderr only on a terminal,
 * as one line that each call rewrites in place; elsewhere (a log, a pipe) there is none.
 * mb_note() is a whole line on stderr (a skip, a discarded round, a missed block): it clears
 * the progress line first and flushes stdout, so it lands between two lines of results.
 */
void mb_output_init(void);
__attribute__((format(printf, 1, 2))) void mb_progress(const char *fmt, ...);
void mb_progress_clear(void);
__attribute__((format(printf, 1, 2))) void mb_note(const char *fmt, ...);

/* Evaluate a call returning -1 on error; die with the call's text if it fails. */
#define MB_CHECK(call)                                                                   \
	do {                                                                             \
		if ((call) == -1)                                                        \
			mb_die("%s:%d: %s", __FILE__, __LINE__, #call);                  \
	} while (0)

static inline uint64_t mb_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts); /* vDSO; cannot fail with a valid clock id */
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Pin the calling thread to `cpu`, or allow every online CPU if cpu < 0. */
void mb_pin_self(int cpu);
/* Parse "none" / "-1" as -1, else a CPU number; exits on a bad value. */
int mb_parse_cpu(const char *s);
/* "CPU 0" or "unpinned" into buf. */
const char *mb_cpu_str(int cpu, char *buf, size_t len);

/* Order statistics: sorts v in place. p in [0, 100]; linear interpolation. */
void mb_sort(double *v, size_t n);
double mb_pct_sorted(const double *v, size_t n, double p);

/* The run conditions printed with every result. */
struct mb_sysinfo {
	char cpu_model[160];
	int ncpu;               /* online CPUs */
	int root;               /* euid == 0 */
	char paranoid[16];      /* /proc/sys/kernel/perf_event_paranoid */
	char kernel[200];       /* uname -r and -v */
	char timer_slack[32];   /* prctl(PR_GET_TIMERSLACK) of the caller, ns */
};
void mb_sysinfo_get(struct mb_sysinfo *si);
void mb_sysinfo_print(FILE *f, const struct mb_sysinfo *si);
/* The same in one line: "AMD EPYC, 2 CPUs, kernel 6.1 (...), root" (for a plot's title). */
const char *mb_sysinfo_line(const struct mb_sysinfo *si, char *buf, size_t len);

/* A "kB" field of /proc/self/status (VmRSS, VmHWM, ...) or a plain count (Threads); -1 if absent. */
long mb_status_field(const char *name);

/* Directory of the running executable's grandparent ("<root>/build" when the binary is
 * <root>/build/microbench/X), or "build" if the binary is elsewhere. */
void mb_default_outdir(char *buf, size_t len);

/* Human-readable duration: "126 ns", "3.45 us", "1.20 ms", "2.00 s". */
const char *mb_fmt_ns(double ns, char *buf, size_t len);

/*
 * A writer process: for every byte the reader sends on the control pipe it writes one byte into
 * the data pipe, so that a read's data comes from another process, woken only once the reader
 * asks. Start it before any thread exists (fork copies only the caller). The reader keeps the
 * data pipe's write end too, for the watchdog's rescue byte. mb_writer_stop closes the control
 * pipe (the writer exits on EOF) and fails unless the writer exited with status 0.
 */
struct mb_writer {
	pid_t pid;
	int ctl_wfd;   /* one byte here: "write one byte" */
	int data_rfd;  /* the reader's end */
	int data_wfd;  /* the writer's end, also kept by the reader */
};
void mb_writer_start(struct mb_writer *w, int cpu);
void mb_writer_kick(const struct mb_writer *w);
/* Move the running writer to `cpu` (< 0: every CPU). */
void mb_writer_pin(const struct mb_writer *w, int cpu);
void mb_writer_stop(struct mb_writer *w);

/*
 * CPU hogs: n processes spinning at normal priority, each pinned to CPU i % ncpu when `pin` is
 * set, else free to run anywhere. They are processes, not threads, so that the library under test
 * sees them only as a busy machine. mb_hogs_stop kills and reaps them; exit() does the same, and a
 * hog dies with the thread that forked it (PR_SET_PDEATHSIG) or after 10 minutes, so none
 * outlives a run that failed or hung.
 */
void mb_hogs_start(int n, int pin);
void mb_hogs_stop(void);

/*
 * One line of the summary: a figure of this run beside the bar it has to meet, and whether it
 * does. Printed on stdout and, when path is not empty, appended to path, which gets the machine
 * as its first line when it is new (the make targets print the file at the end).
 */
void mb_bar(const char *path, const struct mb_sysinfo *si, const char *figure, const char *value,
	    const char *bar, int met);

/*
 * Watchdog. The measured thread stores its progress (any changing number) and phase; the
 * watchdog thread (unpinned, wakes every 100 ms) acts on a lack of progress:
 *  - phase MB_PH_SYSCALL for rescue_ms: the call under test blocked without being handed off
 *    (the detector missed the block). If rescue_fd >= 0, write one byte to it to release the
 *    call, count it in `rescued`, and say so on stderr.
 *  - any phase for abort_ms: print what was running and where, then _exit(3).
 * Stores are relaxed: the watchdog only needs to see them eventually.
 */
enum mb_phase { MB_PH_IDLE = 0, MB_PH_SYSCALL, MB_PH_WAIT, MB_PH_OTHER };
struct mb_watch {
	_Atomic unsigned long progress;
	_Atomic int phase;
	_Atomic int rescue_fd;         /* -1: no rescue */
	_Atomic unsigned long rescued;
	_Atomic(const char *) label;   /* what is running, for the report */
	int rescue_ms;
	int abort_ms;
};
void mb_watch_start(struct mb_watch *w, int rescue_ms, int abort_ms);
static inline void mb_watch_set(struct mb_watch *w, unsigned long progress, int phase)
{
	atomic_store_explicit(&w->progress, progress, memory_order_relaxed);
	atomic_store_explicit(&w->phase, phase, memory_order_relaxed);
}

#endif
