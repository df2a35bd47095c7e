/*
 * spurious.c - full-pipe reads (none can block) that went to the background anyway: false alarms.
 *
 * First, the default detector (auto), unpinned, N reads (--reads, default 5,000,000) under three
 * conditions, one after the other:
 *   quiet  nothing else of ours runs
 *   hogs   beside two CPU-bound processes (normal priority, unpinned, like two busy shell loops)
 *   flip   a thread of the program moves the reader to the next CPU every millisecond
 *          (sched_setaffinity to one CPU, round robin): a runner that migrates inside its call
 *          is what can make a standby left behind on its old CPU think it is in a call
 * Every EINPROGRESS is a false alarm that reached the program; laio_stats() also counts the claims
 * the library refused because the runner was not asleep (caught before they went anywhere).
 *
 * Then, per detector, full-pipe reads for --secs seconds (default 3; --quick 0.5) beside two
 * spinning threads of the process itself.
 */
#define _GNU_SOURCE
#include <sys/syscall.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "laio.h"
#include "mb_common.h"

static const struct { const char *name; enum laio_detector d; } dets[] = {
	{ "idle", LAIO_DETECT_IDLE },   { "auto", LAIO_DETECT_AUTO },
	{ "upcall", LAIO_DETECT_UPCALL }, { "watchdog", LAIO_DETECT_WATCHDOG },
	{ "probe", LAIO_DETECT_PROBE },
};
#define NDET ((int)(sizeof dets / sizeof dets[0]))

static volatile int stop_hogs;
static double secs = 3;
static struct mb_watch watch;

/* ---- N reads of the default detector under three conditions ------------------------------------ */

enum cond { C_QUIET, C_HOGS, C_FLIP, NCOND };
static const char *const cond_name[NCOND] = {"quiet", "2 hogs", "flip 1 ms"};
static const char *const cond_what[NCOND] = {
	"nothing else of ours runs",
	"beside two CPU-bound processes, unpinned",
	"a thread moves the reader to the next CPU every millisecond",
};

#define CHUNK 65536 /* bytes written into the pipe at once, then read one at a time */

struct alarm_run {
	long n;
	int ok;
	char used[32];
	_Atomic pid_t tid;        /* the reader's kernel thread, for the flipper */
	_Atomic int done;
	unsigned long inprogress; /* false alarms the program saw */
	unsigned long refused;    /* laio_stats: claims refused, the runner was not asleep */
	unsigned long flips;
	double ns_per_read;
};

static void *alarm_reader(void *arg)
{
	struct alarm_run *r = arg;
	struct laio_config c = {.detector = LAIO_DETECT_AUTO};
	if (laio_init(&c) < 0)
		mb_die("laio_init(auto)");
	snprintf(r->used, sizeof r->used, "%s", laio_detector_name(SYS_read));
	atomic_store(&r->tid, (pid_t)syscall(SYS_gettid));
	int p[2];
	MB_CHECK(pipe2(p, O_CLOEXEC));
	if (fcntl(p[1], F_SETPIPE_SZ, CHUNK) < CHUNK)
		mb_die("fcntl(F_SETPIPE_SZ, %d)", CHUNK);
	static char fill[CHUNK];
	struct laio_stats s0, s1;
	laio_stats(&s0);
	uint64_t t0 = mb_now_ns();
	char b;
	for (long done = 0; done < r->n;) {
		atomic_store_explicit(&watch.progress, (unsigned long)done, memory_order_relaxed);
		long k = r->n - done < CHUNK ? r->n - done : CHUNK;
		if (write(p[1], fill, (size_t)k) != k)
			mb_die("write");
		for (long i = 0; i < k; i++) {
			long got = laio_syscall(SYS_read, p[0], &b, 1);
			if (got == -1 && errno == EINPROGRESS) {
				struct laio_completion comp;
				r->inprogress++;
				if (laio_poll(&comp, 1, NULL) != 1 || comp.laio_return_value != 1)
					mb_fail("a background read did not return its byte");
			} else if (got != 1) {
				mb_die("laio_syscall(SYS_read) on a full pipe returned %ld", got);
			}
		}
		done += k;
		/* after a false alarm the program may continue on another kernel thread */
		atomic_store(&r->tid, (pid_t)syscall(SYS_gettid));
	}
	r->ns_per_read = (double)(mb_now_ns() - t0) / (double)r->n;
	laio_stats(&s1);
	for (int d = 0; d < LAIO_DETECT_COUNT; d++)
		r->refused += s1.spurious[d] - s0.spurious[d];
	if (s1.blocked - s0.blocked != r->inprogress)
		mb_fail("laio_stats counted %lu calls in the background, the reader saw %lu",
			s1.blocked - s0.blocked, r->inprogress);
	MB_CHECK(close(p[0]));
	MB_CHECK(close(p[1]));
	r->ok = 1;
	atomic_store(&r->done, 1);
	return NULL;
}

static void *flipper(void *arg)
{
	struct alarm_run *r = arg;
	int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
	/* absolute deadlines, so that the time a flip takes does not stretch the period */
	struct timespec next;
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (int k = 0; !atomic_load(&r->done); k++) {
		pid_t tid = atomic_load(&r->tid);
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(k % ncpu, &set);
		/* ESRCH: the reader moved to another kernel thread and this one ended */
		if (tid && sched_setaffinity(tid, sizeof set, &set) == 0)
			r->flips++;
		next.tv_nsec += 1000000;
		if (next.tv_nsec >= 1000000000) {
			next.tv_nsec -= 1000000000;
			next.tv_sec++;
		}
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
	}
	return NULL;
}

static void run_condition(int cond, struct alarm_run *r)
{
	pthread_t t, f;
	if (cond == C_HOGS)
		mb_hogs_start(2, 0);
	if (pthread_create(&t, NULL, alarm_reader, r))
		mb_fail("pthread_create");
	if (cond == C_FLIP && pthread_create(&f, NULL, flipper, r))
		mb_fail("pthread_create");
	pthread_join(t, NULL);
	atomic_store(&r->done, 1);
	if (cond == C_FLIP)
		pthread_join(f, NULL);
	if (cond == C_HOGS)
		mb_hogs_stop();
}

/* A false alarm is a figure beside its bar, not a failed run: the exit status stays 0. */
static void false_alarms(long n, const char *bars, const struct mb_sysinfo *si)
{
	printf("\n== false alarms: %ld full-pipe reads, detector auto, unpinned ==\n", n);
	for (int c = 0; c < NCOND; c++)
		printf("# %-10s %s\n", cond_name[c], cond_what[c]);
	printf("%-10s %-6s %10s %12s %10s %18s %8s\n", "condition", "used", "reads", "EINPROGRESS",
	       "ns/read", "stats: refused", "flips");
	static struct alarm_run runs[NCOND];
	for (int c = 0; c < NCOND; c++) {
		runs[c] = (struct alarm_run){.n = n};
		atomic_store(&watch.label, cond_name[c]);
		atomic_store_explicit(&watch.phase, MB_PH_OTHER, memory_order_relaxed);
		mb_progress("spurious: %ld reads, %s ...", n, cond_name[c]);
		run_condition(c, &runs[c]);
		atomic_store_explicit(&watch.phase, MB_PH_IDLE, memory_order_relaxed);
		mb_progress_clear();
		struct alarm_run *r = &runs[c];
		printf("%-10s %-6s %10ld %12lu %10.0f %18lu %8lu\n", cond_name[c], r->used, r->n,
		       r->inprogress, r->ns_per_read, r->refused, r->flips);
	}
	for (int c = 0; c < NCOND; c++) {
		char fig[160], v[32];
		snprintf(fig, sizeof fig, "spurious: %ld full-pipe reads, auto, unpinned, %s: "
			 "background", n, cond_name[c]);
		snprintf(v, sizeof v, "%lu", runs[c].inprogress);
		mb_bar(bars, si, fig, v, "0", runs[c].inprogress == 0);
	}
}

/* ---- per detector, beside two spinning threads ------------------------------------------------- */

static void *hog(void *arg)
{
	(void)arg;
	volatile unsigned long x = 0;
	while (!stop_hogs)
		x++;
	return NULL;
}

struct run {
	enum laio_detector d;
	int ok;
	char used[32];
	unsigned long reads, inprogress, spurious, handoffs;
};

static void *reader(void *arg)
{
	struct run *r = arg;
	struct laio_config c = { .detector = r->d };
	if (laio_init(&c) < 0)
		return NULL;
	snprintf(r->used, sizeof r->used, "%s", laio_detector_name(SYS_read));
	int p[2];
	if (pipe(p) != 0)
		mb_die("pipe");
	fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
	static char fill[4096];
	char b;
	uint64_t end = mb_now_ns() + (uint64_t)(secs * 1e9);
	while (mb_now_ns() < end) {
		atomic_store_explicit(&watch.progress, r->reads, memory_order_relaxed);
		for (int i = 0; i < 4096; i++)
			if (write(p[1], fill, 1) != 1)
				mb_die("write");
		for (int i = 0; i < 4096; i++) {
			long n = laio_syscall(SYS_read, p[0], &b, 1);
			r->reads++;
			if (n == -1 && errno == EINPROGRESS) {
				struct laio_completion done;
				r->inprogress++;
				if (laio_poll(&done, 1, NULL) != 1 || done.laio_return_value != 1)
					mb_die("a background read did not return its byte");
			} else if (n != 1) {
				mb_die("read: %ld", n);
			}
		}
	}
	struct laio_stats st;
	laio_stats(&st);
	for (int d = 0; d < LAIO_DETECT_COUNT; d++) {
		r->spurious += st.spurious[d];
		r->handoffs += st.handoffs[d];
	}
	close(p[0]);
	close(p[1]);
	r->ok = 1;
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = { { "secs", required_argument, 0, 's' },
					    { "reads", required_argument, 0, 'n' },
					    { "bars", required_argument, 0, 'b' },
					    { "quick", no_argument, 0, 'q' },
					    { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 } };
	int c, secs_set = 0, n_set = 0;
	long n = 5000000;
	char bars[4096] = "";
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		if (c == 's')
			secs = atof(optarg), secs_set = 1;
		else if (c == 'n')
			n = strtol(optarg, NULL, 10), n_set = 1;
		else if (c == 'b')
			snprintf(bars, sizeof bars, "%s", optarg);
		else if (c == 'q') {
			if (!secs_set)
				secs = 0.5;
			if (!n_set)
				n = 500000;
		} else {
			printf("usage: spurious [--reads N (default 5000000)] [--secs S (default 3)] "
			       "[--quick (N 500000, 0.5 s)] [--bars PATH]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (n < 1 || secs <= 0)
		mb_fail("spurious: --reads and --secs must be positive");
	struct mb_sysinfo si;
	mb_output_init();
	mb_sysinfo_get(&si);
	mb_watch_start(&watch, 1000, 60000);
	printf("spurious: full-pipe reads (none can block); every EINPROGRESS is a false alarm\n");
	mb_sysinfo_print(stdout, &si);
	false_alarms(n, bars, &si);

	printf("\n== per detector: full-pipe reads beside 2 spinning threads, %.1f s each ==\n", secs);
	pthread_t h[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&h[i], NULL, hog, NULL);
	printf("%-10s %-10s %12s %12s %10s %16s\n", "detector", "used", "reads", "EINPROGRESS",
	       "rate", "stats: spurious");
	for (int d = 0; d < NDET; d++) {
		struct run r = { .d = dets[d].d };
		mb_progress("spurious: detector %s, %.1f s ...", dets[d].name, secs);
		atomic_store(&watch.label, dets[d].name);
		atomic_store_explicit(&watch.phase, MB_PH_OTHER, memory_order_relaxed);
		pthread_t t;
		pthread_create(&t, NULL, reader, &r);
		pthread_join(t, NULL);
		atomic_store_explicit(&watch.phase, MB_PH_IDLE, memory_order_relaxed);
		mb_progress_clear();
		if (!r.ok) {
			printf("%-10s skipped: cannot work here\n", dets[d].name);
			continue;
		}
		printf("%-10s %-10s %12lu %12lu %9.4f%% %10lu of %lu\n", dets[d].name, r.used, r.reads,
		       r.inprogress, 100.0 * (double)r.inprogress / (double)r.reads, r.spurious,
		       r.handoffs);
	}
	stop_hogs = 1;
	for (int i = 0; i < 2; i++)
		pthread_join(h[i], NULL);
	return 0;
}
