/*
 * rt-internal.h - the runtime's private structures and the functions its files share.
 *
 * Thread states (rt_thread.state). Who moves a thread to each state:
 *   RT_READY    on a run queue, waiting for a VP              make_ready() (anyone)
 *   RT_RUNNING  running on VP `vp` (vp->cur == t)             the VP that picks it
 *   RT_BLOCKED  its rt_syscall() blocked in the kernel; the   the upcall handler (SA_BLOCKED)
 *               call runs on another activation
 *   RT_WAITING  parked on a mutex, condition or join          the thread itself, under the
 *                                                             object's spinlock
 *   RT_DEAD     finished; its stack is no longer in use       finish_switch() after its last
 *                                                             switch away
 *   RT_FREE     in the pool of thread structures              rt_join() / detach
 * A thread's context (tm.tm_context) is valid in READY, BLOCKED (saved by the trap) and
 * WAITING. It is published to others (put on a run queue, or the object lock released) only
 * after it has been saved: the switch leaves that to the code that runs next on the same VP
 * (finish_switch(), as Linux's finish_task_switch()).
 *
 * Per VP, the mailbox's sa_curthread always names the running user thread or is NULL: never a
 * thread that another VP may be running (a detector would claim this VP for that thread's call).
 */
#ifndef RT_INTERNAL_H
#define RT_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <urcu/wfcqueue.h>
#include "rt.h"
#include "../activation/sa.h"
#include "../trace/trace.h"
#include "san.h"

enum rt_state { RT_READY, RT_RUNNING, RT_BLOCKED, RT_WAITING, RT_DEAD, RT_FREE };

struct rt_vp;

/*
 * Per-thread policy hooks of the upcall handler (see upcall.c and docs/runtime.md). The
 * runtime's own policy: "blocked" does nothing (the VP goes on with another thread) and
 * "unblocked" makes the thread ready with its result. LAIO's policy would resume the caller's
 * saved context with EINPROGRESS in "blocked" and queue the handle as completed, never resuming
 * it, in "unblocked".
 */
struct rt_hooks {
	/* SA_BLOCKED for t: return a thread to run now, or NULL to let the scheduler choose. */
	struct rt_thread *(*blocked)(struct rt_vp *vp, struct rt_thread *t);
	/* t's call finished (result in t->tm): make it ready, or consume it. */
	void (*unblocked)(struct rt_vp *vp, struct rt_thread *t);
};
extern const struct rt_hooks rt_default_hooks;

struct rt_stack {
	void *base;        /* start of the mapping: the guard page */
	void *lo;          /* the lowest usable byte, just above the guard page */
	size_t size;       /* usable bytes */
};

struct rt_thread {
	struct sa_thr_mailbox tm;       /* first: a mailbox pointer is a thread pointer */
	struct cds_wfcq_node rq_node;   /* link on a run queue */
	int state;                      /* enum rt_state */
	int pin;                        /* -1, or the VP it must run on */
	bool stay;                      /* run next on `vp`, not stolen: its rt_syscall() returns
					   on the VP where it was called (errno, TLS addresses) */
	struct rt_vp *vp;               /* the VP it runs or last ran on */
	long resume;                    /* the value its saved context is resumed with */
	const struct rt_hooks *hooks;
	void *(*fn)(void *);
	void *arg;
	void *ret;
	uint64_t id;
	long nr;                        /* the system call it is in (for tracing) */
	struct rt_stack stack;
	/* join: guarded by jlk */
	uint32_t jlk;
	uint32_t exited;                /* futex word for joiners outside the runtime */
	uint32_t ext_waiter;            /* an outside thread sleeps on `exited` */
	bool detached, joined;
	struct rt_thread *joiner;       /* a user thread parked in rt_join() */
	struct rt_thread *wnext;        /* link on a mutex or condition wait list */
	struct rt_thread *pool_next;    /* link in the free pool */
	struct rt_san_fiber san;        /* sanitizer bookkeeping (empty without sanitizers) */
	uint32_t nopreempt;             /* > 0 while it runs runtime code (a count: rt_* calls nest)
					   or is switched out: the preemption signal must not switch
					   it there (preempt.c) */
	/* tracing (trace.c): its call in progress, numbered hN if it blocked */
	struct sa_trace_call tc;
};

/* What finish_switch() does with the thread that switched away (vp->prev). */
enum rt_prev_action { RT_PREV_NONE, RT_PREV_REQUEUE, RT_PREV_UNLOCK, RT_PREV_EXIT };

struct rt_vp {
	struct sa_mailbox mb;           /* the VP's scheduler-activations mailbox */
	int id;
	struct rt_thread *cur;          /* the running user thread, or NULL */
	/* run queues: `rq` is shared (the owner and thieves dequeue, under rq_lock), `pinned`
	   holds threads bound to this VP (only the owner dequeues); any thread enqueues */
	struct __cds_wfcq_head rq_head;
	struct cds_wfcq_tail rq_tail;
	struct __cds_wfcq_head pin_head;
	struct cds_wfcq_tail pin_tail;
	uint32_t rq_lock;
	uint32_t tsan_qlock;            /* ThreadSanitizer builds only (sched.c) */
	unsigned pick;                  /* alternates between the two queues */
	uint32_t idle;                  /* 1: about to park or parked in sa_release() */
	bool stop;                      /* rt_shutdown(): leave when nothing is left to run */
	/* the switch in progress (see finish_switch) */
	struct rt_thread *prev;
	int prev_action;
	uint32_t *prev_lock;
	pthread_t pthread;
	struct sa_context home;         /* the VP's kernel-thread context, resumed to stop it */
	char *upcall_stack;             /* lowest usable byte; a guard page is below */
	size_t upcall_stack_size;
	struct rt_stack upcall;
	struct rt_san_fiber san;        /* the scheduler context (upcall stack), for sanitizers */
	struct rt_san_fiber san_home;   /* the VP kernel thread's own context */
	int init_err;                   /* what sa_create() said, for rt_init() */
	uint32_t init_done;             /* futex: the VP thread has set itself up */
	/* preemption (preempt.c): run_seq names the time slice running now, bumped at every
	   switch to a thread; the ticker watches it and the runner's kernel thread id */
	uint64_t run_seq;
	uint64_t preempt_seq;           /* a slice to end at its next safe point, or 0 */
	uint64_t tick_seq, tick_cpu_ns; /* the ticker's last look: the slice, the runner's CPU time */
	uint64_t tick_seen_ns;          /* when the ticker first saw that slice */
	int32_t tick_tid;
	uint64_t preempt_req;           /* the request outstanding (the value it carries), or 0 */
	int32_t preempt_req_tid;        /* the kernel thread it was sent to */
	uint32_t preempt_req_no;        /* numbers the requests (the ticker's only) */
	struct {
		unsigned long switches, upcalls_blocked, upcalls_unblocked, completions, polled,
			      steals, parks, preemptions, preempt_signals;
	} st;
	struct sa_tl_buf *tl;           /* the timeline's records of this VP, or NULL */
};

/* Counters are written by their VP only and read by rt_stats(): relaxed, no locked add. */
#define RT_STAT(vp, f) \
	__atomic_store_n(&(vp)->st.f, __atomic_load_n(&(vp)->st.f, __ATOMIC_RELAXED) + 1, \
			 __ATOMIC_RELAXED)

/* Global state (vp.c). */
struct rt_global {
	int nvp;
	struct rt_vp **vps;
	size_t stack_size;
	unsigned idle_spin_ns;
	bool running;
	unsigned long live;             /* user threads not yet finished */
	uint32_t live_zero;             /* futex: set when `live` drops to 0 (for rt_shutdown) */
	unsigned spawn_rr;              /* next VP for a spawn from outside */
	unsigned long spawned;
	int trace;
	int traced;                     /* trace or tl_file: calls keep their arguments and times */
	struct sa_tl_file *tl_file;     /* RT_TRACE_FILE / rt_config.trace_file, or NULL */
	uint64_t quantum_ns;            /* time slice; 0: cooperative (no ticker, no signal) */
	unsigned long preempt_depth;    /* the most preemption frames seen stacked on a thread */
	unsigned long preempt_kicks;    /* preemption signals taken anywhere: rt_syscall() makes a
					   call again if one of them may have made it fail with EINTR */
};
extern struct rt_global rt_g;

/* The VP the calling kernel thread is, or NULL. The VP's TLS follows it from activation to
 * activation (the shim swaps TLS bases), so a thread-local variable names the VP. Read with a
 * volatile asm: a user thread may resume on another VP, and the compiler must not reuse a TLS
 * address computed before a switch. */
extern __thread struct rt_vp *rt_tls_vp __attribute__((tls_model("initial-exec")));
static inline struct rt_vp *rt_vp_self(void)
{
	struct rt_vp *vp;
	__asm__ volatile("movq rt_tls_vp@gottpoff(%%rip), %0\n\t"
			 "movq %%fs:(%0), %0" : "=r"(vp));
	return vp;
}

/* A thread's state is written by the VP that moves it and read elsewhere (join, checks). */
static inline int rt_state(const struct rt_thread *t)
{
	return __atomic_load_n(&t->state, __ATOMIC_RELAXED);
}

static inline void rt_set_state(struct rt_thread *t, int s)
{
	__atomic_store_n(&t->state, s, __ATOMIC_RELAXED);
}

static inline struct rt_thread *rt_thread_of(struct sa_thr_mailbox *tm)
{
	return (struct rt_thread *)tm;
}

static inline struct rt_vp *rt_vp_of(struct sa_mailbox *mb)
{
	return (struct rt_vp *)mb;
}

static inline uint64_t rt_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Preemption guards. A user thread that enters runtime code (a lock, a switch, a call) raises
 * its count; the preemption signal only switches a thread whose count is 0, and a signal that
 * came while it was raised is taken when it drops to 0. The signal fences keep the compiler
 * from moving the runtime's own accesses out of the guarded region (the handler runs on the
 * same kernel thread: no hardware barrier is needed). */
void rt_preempt_point(void);
static inline void rt_preempt_off(struct rt_thread *t)
{
	__atomic_store_n(&t->nopreempt, t->nopreempt + 1, __ATOMIC_RELAXED);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
}

static inline void rt_preempt_on(struct rt_thread *t)
{
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	uint32_t n = t->nopreempt - 1;
	__atomic_store_n(&t->nopreempt, n, __ATOMIC_RELAXED);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	if (__builtin_expect(n == 0 && rt_g.quantum_ns, 0))
		rt_preempt_point();
}

/* The calling user thread with its guard raised, or NULL outside user threads. */
static inline struct rt_thread *rt_enter(void)
{
	struct rt_vp *vp = rt_vp_self();
	struct rt_thread *t = vp ? vp->cur : NULL;
	if (t)
		rt_preempt_off(t);
	return t;
}

static inline void rt_leave(struct rt_thread *t)
{
	if (t)
		rt_preempt_on(t);
}

/* spinlocks for the short critical sections of mutexes, conditions, join and the pools */
void rt_spin_lock(uint32_t *lk);
static inline void rt_spin_unlock(uint32_t *lk)
{
	__atomic_store_n(lk, 0, __ATOMIC_RELEASE);
}

/* switch.S: save the caller's context in `save`, load `load`; `value` is what the call that
 * saved `load` returns. Same layout as struct sa_context, so contexts saved by the shim's
 * trap and by this switch are interchangeable. */
long rt_ctx_switch(struct sa_context *save, const struct sa_context *load, long value);
long rt_ctx_start(struct sa_context *save, void (*fn)(void *), void *arg, void *stack_top);
void rt_thread_trampoline(void);

/* sched.c */
void rt_make_ready(struct rt_thread *t);
void rt_take_completions(struct rt_vp *vp);
void rt_complete(struct rt_vp *vp, struct sa_thr_mailbox *done, bool polled);
void rt_finish_switch(struct rt_vp *vp);
void rt_park(struct rt_vp *vp, struct rt_thread *self, int action, uint32_t *lock);
__attribute__((noreturn)) void rt_vp_idle(struct rt_vp *vp);
__attribute__((noreturn)) void rt_run_from_upcall(struct rt_vp *vp, struct rt_thread *t);
void rt_vp_queues_init(struct rt_vp *vp);
bool rt_vp_has_work(struct rt_vp *vp);
bool rt_preempt_switch(struct rt_vp *vp, struct rt_thread *self, bool deferred);

/* preempt.c */
#define RT_PREEMPT_SIG RT_PREEMPT_SIGNAL
int rt_preempt_start(void);
void rt_preempt_stop(void);
int rt_preempt_prepare(void);
void rt_preempt_unblock(void);

/* trace.c: one line per event on stderr when rt_g.trace is set; keeps errno */
#define RT_TRACE(vp, ...) do { if (__builtin_expect(rt_g.trace, 0)) rt_trace(vp, __VA_ARGS__); } \
	while (0)
void rt_trace(struct rt_vp *vp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* With rt_g.traced (a line or a timeline is asked for): a call that did not block, the two
 * upcalls, a blocked call that finished (its line, and its span on the timeline) */
void rt_trace_call(struct rt_vp *vp, struct rt_thread *t, long ret, int err);
void rt_trace_blocked(struct rt_vp *vp, struct rt_thread *t, const struct sa_upcall *u);
void rt_trace_unblocked(struct rt_vp *vp, const struct sa_upcall *u);
void rt_trace_finished(struct rt_vp *vp, struct rt_thread *t, bool polled);

/* upcall.c */
void rt_upcall(struct sa_mailbox *mb, struct sa_upcall *u);

/* thread.c */
void rt_thread_finished(struct rt_thread *t);

/* stack.c */
int rt_stack_alloc(struct rt_stack *s, size_t size);
void rt_stack_free(struct rt_stack *s);
size_t rt_page_round(size_t n);

#endif
