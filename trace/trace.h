/*
 * trace.h - the trace format shared by the LAIO layer (LAIO_TRACE, LAIO_TRACE_FILE) and the
 * runtime (RT_TRACE, RT_TRACE_FILE): docs/tracing.md. Internal: not installed.
 *
 * Two outputs. Lines on stderr, each written with one write(2) so that lines of different kernel
 * threads never mix and stdio's locks are never taken (an upcall handler may run while the
 * blocked flow holds the stdout lock). And a timeline in the Chrome trace-event JSON format:
 * records go to a fixed buffer per VP, filled without locks or allocation by the VP's
 * own code (its upcall handler included), and are formatted into the file when the buffer is
 * full and at thread exit, rt_shutdown() and process exit.
 */
#ifndef SA_TRACE_H
#define SA_TRACE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include "../activation/sa.h"

/* Nanoseconds since the process-wide origin of every trace (taken when the library loads). */
uint64_t sa_trace_now(void);

/* The name of system call `nr` ("read"), or "syscall N" written into buf when it has none. */
const char *sa_trace_call_name(long nr, char buf[24]);

/* "4, 0x7ffc5e3a1b20, 3000": the arguments of call `nr` as the trace shows them, as many as the
 * call takes (all six for calls not in the table of sa_trace_nargs()). */
void sa_trace_args(char *buf, size_t size, long nr, const long args[6]);
int sa_trace_nargs(long nr);

/* A CLOCK_MONOTONIC time (tm_done_ns) on the traces' scale. */
uint64_t sa_trace_since_origin(uint64_t mono_ns);

/* What catches blocked calls of VP `mb` whose detector is `configured` (enum sa_detector):
 * "auto: idle for every call", "probe", ... for its start-up line. */
void sa_trace_detector_setup(char *buf, size_t size, struct sa_mailbox *mb, int configured);

/* "idle", "probe", ... (enum sa_detector): the one table of the detectors' names. */
const char *sa_trace_detector_name(int detector);

/* The kernel thread running VP `mb`'s user code now (the shim's record of its runner: set at
 * sa_create() and by every claim), 0 for no VP; no system call. Also what the runtime's
 * preemption ticker signals. */
int sa_runner_tid(struct sa_mailbox *mb);

/* The kernel thread that runs VP `mb` now, without a system call (the VP's runner: the caller
 * itself when called from the VP's user code or upcall handler). gettid() without a VP. */
int sa_trace_tid(struct sa_mailbox *mb);

/* The next number of a call that went to the background: h1, h2, ... process-wide. */
unsigned long sa_trace_next_handle(void);

/* The next LAIO virtual processor number: vp0, vp1, ... */
int sa_trace_next_vp(void);

/* Is environment variable `name` set to something other than "", "0", "no" or "off"? */
bool sa_trace_env_on(const char *name);

/* Tracing is on: make stdout line-buffered so that the program's lines and the trace's keep
 * their order when both go to one pipe or file. Not from an upcall handler (stdio). */
void sa_trace_stdout_lines(void);

/* One stderr line "   12.345 ms  laio vp0  kt 4242  <text>"; keeps errno. */
void sa_trace_vline(const char *layer, int vp, int tid, const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));

/* What the trace keeps of one call of a flow (an LAIO handle, a runtime user thread): filled when
 * the call starts and, if it goes to the background, by its SA_BLOCKED upcall. */
struct sa_trace_call {
	long nr;
	long args[6];
	uint64_t t_start, t_block;       /* the call's start and its SA_BLOCKED upcall (timeline) */
	unsigned long hno;               /* hN once it went to the background, 0 before */
	int call_tid;                    /* the kernel thread executing it after the block */
	int8_t detector;                 /* who caught the block (enum sa_detector) */
	uint8_t moved;                   /* and which way: sa_upcall.sa_moved */
};

/* A call starts: its number and arguments, and its start time when a timeline is kept. */
void sa_trace_call_start(struct sa_trace_call *c, long nr, const long args[6], bool timeline);

/* Its SA_BLOCKED upcall `u`: number it hN and note who caught it and how (the shim says). */
void sa_trace_call_blocked(struct sa_trace_call *c, const struct sa_upcall *u, bool timeline);

/* "write(4, 0x7ffc5e3a1b20, 3000)" */
const char *sa_trace_call_text(char *buf, size_t size, const struct sa_trace_call *c);

/* "idle caught it: VP moved to a spare (this kt), kt 42 keeps the call" or
 * "eager caught it: call moved to kt 42" */
const char *sa_trace_handoff(char *buf, size_t size, const struct sa_trace_call *c);

/* ---- the timeline file ---- */

enum sa_tl_kind {
	SA_TL_CALL,      /* a system call: a span from ts to t_end on tid (for a blocked call: on
			    the kernel thread that executed it, with hno, t_block and how) */
	SA_TL_BLOCKED,   /* the SA_BLOCKED upcall on tid for call hno (executed on call_tid) */
	SA_TL_UNBLOCKED, /* the SA_UNBLOCKED upcall on tid: count finished calls, or a timeout */
	SA_TL_POLL,      /* laio_poll(): a span from ts to t_end that reported count calls */
	SA_TL_DONE,      /* the flow learns that background call hno finished: laio_poll()'s
			    report, the runtime's completion of a thread */
};

struct sa_tl_rec {
	uint8_t kind;
	int8_t detector;         /* blocked calls: enum sa_detector */
	uint8_t moved;           /* blocked calls: sa_upcall.sa_moved */
	uint8_t timedout;        /* SA_TL_UNBLOCKED */
	int32_t tid, call_tid;   /* the kernel thread of the event; of the blocked call */
	int32_t vp;
	long nr, ret;
	int err;
	long args[6];
	uint64_t ts, t_block, t_end; /* ns since the origin */
	unsigned long hno;       /* the background call's number, 0: the call did not block */
	unsigned long count;
	unsigned long thread;    /* the runtime's user thread id, 0: none */
};

#define SA_TL_RECS 512

struct sa_tl_file;

struct sa_tl_buf {
	struct sa_tl_file *file;
	uint32_t lock;           /* the owner appending, or a flush from another thread at exit */
	unsigned n;
	struct sa_tl_buf *next;  /* on the file's list */
	struct sa_tl_rec rec[SA_TL_RECS];
};

/* Open (once per path, for the process's life) the timeline file `path` for layer "laio" or
 * "rt"; as many files as the program names. NULL with errno if it cannot be created (said on
 * stderr, with the path shortened if it is long). Not from an upcall handler. */
struct sa_tl_file *sa_tl_open(const char *path, const char *layer);

/* A buffer of records for one VP (malloc: at set-up, not in an upcall handler), or NULL. */
struct sa_tl_buf *sa_tl_buf_new(struct sa_tl_file *f);

/* Flush the buffer and free it (thread exit, rt_shutdown). */
void sa_tl_buf_free(struct sa_tl_buf *b);

/* Append a record; the buffer is written to the file when full. No allocation, no stdio. */
void sa_tl_add(struct sa_tl_buf *b, const struct sa_tl_rec *r);

/* The records of a traced call, on VP `vp` (runtime user thread `thread`, 0: none):
 * its span when it did not block (on kernel thread `tid`, ending now) or when it finished in
 * the background (on the kernel thread that executed it, ending at `done_mono_ns`, the shim's
 * tm_done_ns); and its SA_BLOCKED upcall on `tid`. */
void sa_tl_call(struct sa_tl_buf *b, const struct sa_trace_call *c, int vp, int tid,
		unsigned long thread, long ret, int err);
void sa_tl_call_finished(struct sa_tl_buf *b, const struct sa_trace_call *c, int vp,
			 unsigned long thread, long ret, int err, uint64_t done_mono_ns);
void sa_tl_blocked(struct sa_tl_buf *b, const struct sa_trace_call *c, int vp, int tid,
		   unsigned long thread);
/* The flow on kernel thread `tid` learns, now, that background call c finished. */
void sa_tl_done(struct sa_tl_buf *b, const struct sa_trace_call *c, int vp, int tid,
		unsigned long thread, long ret, int err);

/* Write the buffer's records to the file now. */
void sa_tl_flush(struct sa_tl_buf *b);

#endif
