/*
 * laio-internal.h - LAIO's state, named after the paper's implementation section
 * (docs/design.md, "The paper, step by step, in code").
 */
#ifndef LAIO_INTERNAL_H
#define LAIO_INTERNAL_H

#include <stdbool.h>
#include "laio.h"
#include "../activation/sa.h"
#include "../trace/trace.h"

enum laio_handle_state { H_FREE, H_CURRENT, H_BACKGROUND, H_COMPLETED };

/* An LAIO handle is a thread mailbox: the paper's handle is the blocked thread's mailbox. */
struct laio_handle {
	struct sa_thr_mailbox tm;        /* first: a handle pointer is a mailbox pointer */
	struct laio_handle *next;        /* on the free list or the completed list */
	int state;
	struct sa_trace_call tc;         /* tracing only (docs/tracing.md): written while the
					    thread traces */
};

#define LAIO_CHUNK 256
struct laio_chunk {                      /* handles are allocated LAIO_CHUNK at a time */
	struct laio_chunk *next;
	struct laio_handle h[LAIO_CHUNK];
};

#define LAIO_UPCALL_STACK (64 * 1024)

/* The paper's globals (sched_data, current_thread, laio_desc_bg, the free and completed lists),
 * one set per thread that uses LAIO. */
struct laio_state {
	struct sa_mailbox mb;                   /* the KSE mailbox of this thread's VP */
	struct laio_handle *current_handle;     /* handed to the running flow before each call */
	struct laio_handle *background_handle;  /* the last call that went to the background */
	struct laio_handle *free_head, *free_tail;       /* the pool of free handles */
	struct laio_handle *completed_head, *completed_tail; /* finished, not yet reported */
	struct laio_chunk *chunks;
	struct sa_context poll_ctx;             /* where an upcall resumes laio_poll() */
	const struct timespec *poll_timeout;    /* what laio_poll() releases the VP for */
	bool poll_timedout;
	int efd;                                /* laio_fd(), or -1 */
	int max_inflight;
	int trace;                              /* stderr lines (LAIO_TRACE) */
	int traced;                             /* trace or tl: calls take the traced path */
	int vp_no;                              /* vpN in traces */
	struct sa_tl_buf *tl;                   /* the timeline's records (LAIO_TRACE_FILE) */
	struct laio_stats st;
	unsigned long nsync_seen;               /* sa_nsync when last counted into st */
	struct laio_state *dead_next;           /* on the list of states of exited threads */
	char *upcall_stack;
};

struct laio_state *laio_state_get(void);
long laio_env_long(const char *name, long lo, long hi, long dflt);
/* The body of laio_syscall(): entry.S jumps here (hidden, so the jump needs no PLT). */
__attribute__((visibility("hidden")))
long laio_syscall7(long number, long a0, long a1, long a2, long a3, long a4, long a5);
/* The body of laio_syscall_r(), the same way. */
__attribute__((visibility("hidden")))
long laio_syscall_r8(void **hp, long number, long a0, long a1, long a2, long a3, long a4, long a5);
bool laio_pool_grow(struct laio_state *ls);
struct laio_handle *laio_handle_alloc(struct laio_state *ls);
void laio_handle_free(struct laio_state *ls, struct laio_handle *h);
bool laio_handle_valid(struct laio_state *ls, void *p);
void laio_upcall(struct sa_mailbox *mb, struct sa_upcall *u);
void laio_update_limit(struct laio_state *ls);
/* `upcall`: the list came with an SA_UNBLOCKED upcall (for the trace) */
void laio_completed_append(struct laio_state *ls, struct sa_thr_mailbox *done, bool upcall);
void laio_trace(struct laio_state *ls, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int laio_timeline_start(struct laio_state *ls, const char *path);
void laio_trace_detector(struct laio_state *ls, int configured);
int laio_clamp_inflight(long v, const char *what);
int laio_env_detector(void);
void laio_say_unavailable(int d, int err);
void laio_count_sync(struct laio_state *ls, unsigned long now);

/* After each call: did a limit make it run synchronously? (one load on the fast path) */
static inline void laio_look_sync(struct laio_state *ls)
{
	unsigned long now = __atomic_load_n(&ls->mb.sa_nsync, __ATOMIC_RELAXED);
	if (__builtin_expect(now != ls->nsync_seen, 0))
		laio_count_sync(ls, now);
}


#endif
