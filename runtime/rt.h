/*
 * rt.h - user-level M:N threads on scheduler activations (the runtime's whole public contract).
 *
 * rt_init() starts N virtual processors (VPs), each a kernel thread bound to a scheduler
 * activations mailbox (activation/sa.h). User threads (rt_spawn) run on them, are switched at
 * user level (no kernel involvement, ~10 ns), and may make any system call through rt_syscall():
 * if the call blocks in the kernel, the VP gets an upcall and runs another user thread; the
 * blocked one becomes ready again, with its result, when the call completes.
 *
 * Scheduling is cooperative by default: a user thread runs until it yields, waits (rt_join,
 * rt_mutex_lock, rt_cond_wait), exits, or blocks in rt_syscall(). With a time slice
 * (rt_config.quantum_us or RT_QUANTUM_US) it is also preempted when it has computed for a slice
 * while other threads of its VP were ready, but only at instructions of the program itself:
 * never inside the runtime or a shared library such as libc (docs/runtime.md, "Preemption").
 * System calls made directly (libc's read(), printf(), ...) block the whole VP. See
 * docs/runtime.md for the design, docs/man/rt_*.3 for each call.
 *
 * Errors: functions that return int return 0 or an errno value (as pthreads does); rt_spawn()
 * returns NULL and sets errno; rt_syscall() returns -1 and sets errno, as syscall(2) does.
 */
#ifndef RT_H
#define RT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default) /* the library is built with -fvisibility=hidden */

typedef struct rt_thread rt_thread_t;

/* How a VP finds out that a call blocked (the values of enum sa_detector in sa.h). */
enum rt_detector {
	RT_DETECT_AUTO = 0,  /* the shim's choice per call: idle, else probe/watchdog */
	RT_DETECT_UPCALL,    /* perf context-switch event (needs perf permission) */
	RT_DETECT_PROBE,     /* non-blocking form first; other calls run synchronously */
	RT_DETECT_WATCHDOG,  /* a monitor sees the same call in progress at two looks */
	RT_DETECT_EAGER,     /* every call is handed to another activation */
	RT_DETECT_IDLE,      /* a standby at SCHED_IDLE on the VP's CPU runs when a call blocked */
};

#define RT_DEFAULT_STACK_SIZE (256 * 1024) /* usable bytes; a guard page is added below */

/* The signal that preempts user threads when rt_config.quantum_us is set (<signal.h>); its
 * handler stays installed after rt_shutdown(). */
#define RT_PREEMPT_SIGNAL (SIGRTMAX - 3)

struct rt_config {
	int nvp;                 /* virtual processors; <= 0: one per online CPU */
	size_t stack_size;       /* default user stack size; 0: RT_DEFAULT_STACK_SIZE */
	int detector;            /* enum rt_detector */
	unsigned idle_spin_ns;   /* how long an idle VP looks for work before it parks; 0: 20 us */
	int trace;               /* print every upcall and scheduling decision to stderr (also
				    with the environment variable RT_TRACE=1) */
	unsigned quantum_us;     /* time slice in microseconds (>= 50), or 0: cooperative, unless
				    the environment variable RT_QUANTUM_US gives one. Costs a
				    ticker thread and reserves the signal RT_PREEMPT_SIGNAL */
	const char *trace_file;  /* write a timeline of the VPs' calls and upcalls to this file
				    (Chrome trace-event JSON, docs/tracing.md); NULL: the
				    environment variable RT_TRACE_FILE's, if set */
	int cgroup;              /* a cpu cgroup of each VP's own where the process may make one
				    (rt_init(3)): 1 on, -1 off, 0 the environment variable
				    LAIO_CGROUP's (off unless it is 1) */
};

/* Start the runtime with default configuration and `nvp` VPs. 0 or an errno value (EBUSY:
 * already running; EINVAL; EAGAIN/ENOMEM: resources; ENOTSUP: detector not available). */
int rt_init(int nvp);
int rt_init_config(const struct rt_config *cfg);

/* Wait until every user thread has exited, then stop and join the VPs. Call it from outside
 * the runtime (not from a user thread: EDEADLK). 0 or an errno value. rt_init() may follow. */
int rt_shutdown(void);

/* Number of VPs, and the VP the calling user thread runs on (-1 outside user threads). */
int rt_nvp(void);
int rt_vp_id(void);

struct rt_attr {
	size_t stack_size;       /* 0: the configured default */
	int vp;                  /* -1: any VP, the thread may migrate; >= 0: pinned to that VP */
};
#define RT_ATTR_INIT { 0, -1 }

/* Create a user thread running fn(arg); its return value is what rt_join() gets. From a user
 * thread it starts on the caller's VP, from outside on the VPs in turn. NULL with errno
 * (EINVAL: bad attribute or runtime not started; ENOMEM). */
rt_thread_t *rt_spawn(void *(*fn)(void *), void *arg);
rt_thread_t *rt_spawn_attr(const struct rt_attr *attr, void *(*fn)(void *), void *arg);

/* Let other ready user threads of this VP run; returns at once if there are none. */
void rt_yield(void);

/* Wait for `t` to finish and free it; *ret (if not NULL) gets its value. From a user thread
 * the user thread waits (the VP runs others); from outside, the kernel thread waits. Each
 * thread is joined once, or detached. 0, EINVAL (detached or already joined), EDEADLK (self). */
int rt_join(rt_thread_t *t, void **ret);

/* The thread frees itself when it finishes; it must not be joined. 0 or EINVAL. */
int rt_detach(rt_thread_t *t);

/* End the calling user thread with value `ret` (returning from fn does the same). */
__attribute__((noreturn)) void rt_exit(void *ret);

/* The calling user thread, or NULL outside user threads. */
rt_thread_t *rt_self(void);

/* A small number naming the thread (1, 2, ...; unique while the runtime runs). */
uint64_t rt_thread_id(const rt_thread_t *t);

/* Any system call (up to six long arguments). If it blocks, the VP runs other user threads
 * meanwhile; the call returns, in the calling thread, what syscall(2) would have: the result,
 * or -1 with errno set. Outside user threads it is syscall(2). */
long rt_syscall(long number, ...);

/* ---- synchronisation: waiting parks the user thread, never the kernel thread ---- */

/* Mutexes and condition variables are for user threads only (EPERM elsewhere). Zero-filled
 * (RT_MUTEX_INIT / RT_COND_INIT) is a valid initial state; no destroy is needed. */
typedef struct rt_mutex {
	uint32_t lk;             /* internal spinlock guarding the fields below */
	uint32_t locked;
	rt_thread_t *owner;
	rt_thread_t *wait_head, *wait_tail;  /* FIFO of parked lockers */
} rt_mutex_t;
#define RT_MUTEX_INIT { 0, 0, NULL, NULL, NULL }

int rt_mutex_init(rt_mutex_t *m);
int rt_mutex_lock(rt_mutex_t *m);    /* 0, EDEADLK (already owner), EPERM (not a user thread) */
int rt_mutex_trylock(rt_mutex_t *m); /* 0, EBUSY, EPERM */
int rt_mutex_unlock(rt_mutex_t *m);  /* 0, EPERM (not the owner) */

typedef struct rt_cond {
	uint32_t lk;
	rt_thread_t *wait_head, *wait_tail;
} rt_cond_t;
#define RT_COND_INIT { 0, NULL, NULL }

int rt_cond_init(rt_cond_t *c);
int rt_cond_wait(rt_cond_t *c, rt_mutex_t *m);  /* 0, EPERM (m not held by the caller) */
int rt_cond_signal(rt_cond_t *c);               /* any thread may signal */
int rt_cond_broadcast(rt_cond_t *c);

/* ---- statistics ---- */
struct rt_stats {
	unsigned long spawned;          /* user threads created */
	unsigned long switches;         /* user-level context switches */
	unsigned long upcalls_blocked;  /* SA_BLOCKED upcalls: a call blocked, the VP went on */
	unsigned long upcalls_unblocked;/* SA_UNBLOCKED upcalls after the VP released itself */
	unsigned long completions;      /* blocked calls that completed and resumed their thread */
	unsigned long polled;           /* of those, found at a scheduling point without an upcall */
	unsigned long steals;           /* threads taken from another VP's run queue */
	unsigned long parks;            /* times a VP released itself (sa_release) */
	unsigned long preemptions;      /* time slices ended by the preemption signal, at once or
					   at the next safe point */
	unsigned long preempt_signals;  /* preemption signals sent (a slice that overran, again
					   each quantum until the thread is stopped; never a second
					   one while a VP's last one has not been taken) */
	unsigned long preempt_depth;    /* the most preemption handler frames found stacked on one
					   thread's stack since rt_init() (1: never nested) */
};
void rt_stats(struct rt_stats *st);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
