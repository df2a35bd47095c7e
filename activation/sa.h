/*
 * sa.h - the scheduler-activations interface, modelled on FreeBSD kse(2) / <sys/kse.h>.
 *
 *   FreeBSD                      here
 *   struct kse_mailbox           struct sa_mailbox       one per virtual processor (VP)
 *   struct kse_thr_mailbox       struct sa_thr_mailbox   one per user-level flow of control
 *   km_curthread                 sa_curthread            NULL: no upcall for this VP's calls
 *   km_completed                 sa_completed            finished threads, for the next upcall
 *   km_func, km_stack            sa_func, sa_stack       upcall entry and its stack
 *   km_udata, tm_udata           sa_udata, tm_udata      for the user-level scheduler
 *   tm_context                   tm_context              saved user context
 *   kse_create(mbx, 0)           sa_create(mb)           make the calling thread a VP
 *   kse_release(timeout)         sa_release(mb, timeout) park; upcall on completion/timeout
 *   kse_wakeup(mbx)              sa_wakeup(mb)           make a parked VP upcall now
 *   (the syscall trap)           sa_syscall(nr, ...)     a system call that may upcall
 *   kse_thr_interrupt            sa_interrupt(tm)        interrupt a blocked thread
 *   uts_to_thread()              sa_switch_to(mb, tm, v) load tm's context, tm current
 *
 * Differences that Linux forces are listed in docs/design.md ("kse(2) and this layer").
 *
 * Upcalls: the shim calls sa_func(mb, upcall) on the VP's upcall stack, wearing the VP's thread
 * identity (TLS, signal mask). The handler must not return: it ends by loading some context
 * (sa_switch_to or sa_resume). Events:
 *   SA_BLOCKED    `sa_blocked` blocked in sa_syscall(); its saved context is in tm_context and
 *                 it will not come back: its result arrives later on sa_completed.
 *   SA_UNBLOCKED  after sa_release(): `sa_done` is the list of finished threads (linked by
 *                 tm_link, oldest first; each completion is in exactly one upcall), possibly
 *                 empty when `sa_timedout` or a wakeup ended the release.
 */
#ifndef SA_H
#define SA_H

#include <stdint.h>
#include <stddef.h>
#include <time.h>
#include <signal.h>
#include <urcu/wfcqueue.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default) /* the library is built with -fvisibility=hidden */

/* A saved user context: what the System V ABI says survives a call. Layout is used by asm. */
struct sa_context {
	uint64_t rbx, rbp, r12, r13, r14, r15;
	uint64_t rsp;  /* stack pointer after the return */
	uint64_t rip;  /* where to continue */
	uint32_t mxcsr;
	uint16_t fpucw;
	uint16_t pad;
};

/* Cancellation state of a call handed to another activation (tm_cstate). */
enum { SA_CALL_NONE, SA_CALL_QUEUED, SA_CALL_RUNNING, SA_CALL_DONE, SA_CALL_CANCELLING,
       SA_CALL_CANCELLED };

struct sa_thr_mailbox {
	struct sa_context tm_context;      /* offset 0: saved by the trap, read by asm */
	/* Words of the handoff protocol (docs/protocol.md), written by the shim only. */
	uint64_t tm_sys;                   /* 72: even = user code, odd = in call number tm_sys */
	uint64_t tm_claim;                 /* 80: the call a claimer is taking the VP from */
	uint64_t tm_verdict;               /* 88: claim<<1 | won */
	uint64_t tm_swapfs;                /* 96: TLS base the blocked activation wears next */
	/* The result of a blocked call, valid once it is on sa_completed. */
	long tm_retval;                    /* the call's return value, -1 on error */
	int tm_errno;                      /* 0 or the call's errno */
	int tm_cstate;                     /* SA_CALL_*: for sa_interrupt() */
	/* A call that was moved to another activation before it blocked. */
	long tm_nr;
	long tm_args[6];
	void *tm_act;                      /* the activation executing the call (shim private) */
	struct cds_wfcq_node tm_next;      /* link on sa_completed */
	struct sa_thr_mailbox *tm_link;    /* link in an upcall's sa_done list */
	void *tm_udata;                    /* for the user-level scheduler */
	long tm_prefix;                    /* a moved call that continues a partial probe: the bytes
					      already read, added to its result (shim private) */
	unsigned tm_dupfds;                /* a moved call: the arguments (bit i: tm_args[i]) that are
					      copies of the caller's descriptors, held in the table
					      of the activation that runs it (shim private) */
	uint64_t tm_done_ns;               /* with SA_TIMESTAMP: when the blocked call finished
					      (CLOCK_MONOTONIC ns), valid once it is on sa_completed */
};

struct sa_mailbox;

struct sa_upcall {
	int sa_event;                      /* SA_BLOCKED or SA_UNBLOCKED */
	int sa_timedout;                   /* SA_UNBLOCKED: the release timed out */
	struct sa_thr_mailbox *sa_blocked; /* SA_BLOCKED */
	struct sa_thr_mailbox *sa_done;    /* SA_UNBLOCKED: finished threads, oldest first */
	/* SA_BLOCKED: how the block was handed off, for tracing and statistics. */
	int sa_detector;                   /* the detector that caught it (enum sa_detector) */
	int sa_moved;                      /* 1: the call was moved to another activation before it
					      blocked (probe, eager) and the flow stays on its kernel
					      thread; 0: a spare activation took the VP and the
					      blocked kernel thread keeps the call */
	int sa_call_tid;                   /* the kernel thread (gettid) executing the blocked call */
};
enum { SA_BLOCKED = 1, SA_UNBLOCKED = 2 };

typedef void sa_upcall_fn(struct sa_mailbox *mb, struct sa_upcall *upcall);

/* sa_flags */
#define SA_NOUPCALL 0x1 /* KMF_NOUPCALL: calls that block now complete synchronously */
#define SA_NOTIFY 0x2   /* write 1 to sa_notify_fd (an eventfd) after each completion */
#define SA_TIMESTAMP 0x4 /* record in tm_done_ns when each blocked call finished (timelines) */

struct ks_vp;

#define SA_NDETECTORS 6 /* SA_DETECT_COUNT: the size of the per-detector counters below */

struct sa_mailbox {
	struct sa_thr_mailbox *sa_curthread; /* offset 0: the flow whose calls upcall */
	struct ks_vp *sa_vp;                 /* offset 8: the shim's side of this VP (private) */
	sa_upcall_fn *sa_func;
	void *sa_stack;                      /* upcall stack and its size */
	size_t sa_stacksize;
	void *sa_udata;
	unsigned sa_flags;
	int sa_notify_fd;                    /* an eventfd the shim writes on completion, if SA_NOTIFY */
	unsigned long sa_nsync;              /* calls that blocked but ran synchronously: no spare
						activation could be had, or SA_NOUPCALL was set */
	unsigned long sa_handoffs[SA_NDETECTORS]; /* blocked calls handed off, by the detector
						     that found them (enum sa_detector) */
	unsigned long sa_spurious[SA_NDETECTORS]; /* claims each detector proposed that were
						     refused: the runner was not asleep in its
						     call (a false alarm caught) */
	struct cds_wfcq_head sa_completed_head; /* km_completed: a wait-free queue */
	struct cds_wfcq_tail sa_completed_tail;
};

/*
 * Make the calling thread a virtual processor bound to `mb` (kse_create(mb, 0)): no upcall
 * happens now. Fill sa_func, sa_stack, sa_stacksize (and optionally sa_udata, sa_notify_fd)
 * first (the stack at least 4 KiB; sa_flags may hold SA_NOTIFY with sa_notify_fd). 0, or -1 with
 * errno (EINVAL: no upcall function or a stack under 4 KiB; EBUSY: the thread already is a VP;
 * ENOMEM).
 */
int sa_create(struct sa_mailbox *mb);

/*
 * The calling thread, a VP, is about to exit: its activation is retired and the VP stops being
 * watched. Calls still in the background complete onto mb's sa_completed as usual, so `mb` must
 * stay valid until they all have (sa_take_completed() may be called from any one thread then).
 */
void sa_destroy(struct sa_mailbox *mb);

/* After sa_destroy(), once every background call of the VP has been taken from sa_completed:
 * release the shim's memory of the VP. */
void sa_free(struct sa_mailbox *mb);

/* The mailbox of the VP the calling thread is, or NULL. */
struct sa_mailbox *sa_self(void);

/*
 * Perform a system call. If sa_curthread is NULL, or the call does not block, this is
 * syscall(2): same result and errno. If it blocks, the VP upcalls SA_BLOCKED on another
 * activation and this call never returns in its own flow; the upcall handler decides what runs.
 */
long sa_syscall(long nr, long a1, long a2, long a3, long a4, long a5, long a6);

/*
 * Park the VP until a blocked thread completes, sa_wakeup() or the timeout (NULL: none), then
 * upcall SA_UNBLOCKED. Does not return on success; -1 with EINVAL for a bad timespec.
 */
int sa_release(struct sa_mailbox *mb, const struct timespec *timeout);

/* Make a VP that is parked in sa_release() upcall at once; if it is not parked, its next
 * sa_release() returns at once. Any thread may call it. */
void sa_wakeup(struct sa_mailbox *mb);

/* Take every finished thread from sa_completed without an upcall (for a scheduler that is
 * busy and checks between threads). List linked by tm_link, oldest first. VP's runner only. */
struct sa_thr_mailbox *sa_take_completed(struct sa_mailbox *mb);

/* Is anything waiting on sa_completed? Any thread; a hint. */
int sa_has_completed(struct sa_mailbox *mb);

/* Load `ctx` with `value` as the return value of the call that saved it, after making `tm`
 * the VP's current thread (uts_to_thread). Never returns. */
__attribute__((noreturn))
void sa_switch_to(struct sa_mailbox *mb, struct sa_thr_mailbox *tm, const struct sa_context *ctx,
		  long value);

/* Save the caller's context in `ctx` and run fn(arg) on `stack_top`; returns the value that a
 * later sa_switch_to(..., ctx, value) passes. fn must not return. */
long sa_save_and_run(struct sa_context *ctx, void (*fn)(void *), void *arg, void *stack_top);

/*
 * Interrupt thread `tm`, which blocked in a call that is still running in the background: a
 * call not started yet completes with ECANCELED without running, a running one is interrupted
 * by a signal (its completion reports EINTR unless the call is one the kernel restarts).
 * 0, or -1 with ENOENT if it already finished.
 */
int sa_interrupt(struct sa_thr_mailbox *tm);

/* The result of a finished thread in the kernel's convention (-errno on error): the value to
 * resume its saved context with, so that its sa_syscall() returns the result and sets errno:
 *   sa_switch_to(mb, tm, &tm->tm_context, sa_raw_result(tm)); */
static inline long sa_raw_result(const struct sa_thr_mailbox *tm)
{
	return tm->tm_retval == -1 && tm->tm_errno ? -(long)tm->tm_errno : tm->tm_retval;
}

/* Prepare a fresh thread mailbox (zeroed, not on any list). A thread mailbox must stay valid
 * (type-stable memory) while its VP exists: detectors may read its tm_sys at any time. */
void sa_thr_init(struct sa_thr_mailbox *tm);

/* Block detectors (docs/design.md, "Detecting that a call blocked"). */
enum sa_detector {
	SA_DETECT_AUTO = 0, /* idle where it works, else probe where a call has a non-blocking
			       form, else watchdog (docs/design.md) */
	SA_DETECT_UPCALL,   /* perf context-switch event, signal to the VP's standby activation */
	SA_DETECT_PROBE,    /* try the non-blocking form, move the call if it would block */
	SA_DETECT_WATCHDOG, /* a monitor sees the same call in progress at two looks */
	SA_DETECT_EAGER,    /* always move the call: every call upcalls SA_BLOCKED */
	SA_DETECT_IDLE,     /* a standby at SCHED_IDLE on the runner's CPU: the kernel's scheduler
			       runs it exactly when the runner blocked */
	SA_DETECT_COUNT
};
#ifdef __cplusplus
static_assert(SA_DETECT_COUNT == SA_NDETECTORS, "per-detector counters");
#else
_Static_assert(SA_DETECT_COUNT == SA_NDETECTORS, "per-detector counters");
#endif

/* Choose the VP's detector. 0, or -1 with ENOTSUP if it cannot work here (the upcall detector
 * without perf permission), EINVAL for an unknown one. */
int sa_set_detector(struct sa_mailbox *mb, int detector);

/* Can `detector` work in this process? 1 or 0; `why` (may be NULL) gets a reason when not. */
int sa_detector_available(int detector, const char **why);

/* Whether the VP gets a cpu cgroup of its own (docs/design.md, "The VP's cpu cgroup"): on (1;
 * new VPs start off unless the environment says LAIO_CGROUP=1) it does where the process may
 * make cgroups below its own cpu cgroup and its detector is idle: its kernel thread, the idle
 * standbys watching it and the spare that will claim it then move to
 * <its cpu cgroup>/laio.<pidns>.<pid>.<start>/vp<N>. Off (0): its threads stay where they are.
 * Takes effect at once (the detector is set up again). 0, or -1 with EINVAL (on not 0 or 1). */
int sa_set_cgroup(struct sa_mailbox *mb, int on);

/* Which cpu cgroups the VP uses: "v1" or "v2" when it has a group of its own, else "off";
 * `why` (may be NULL) gets where it is, or why it has none. */
const char *sa_cgroup(struct sa_mailbox *mb, const char **why);

/* The detector the VP really uses for system call `nr`: "probe", "upcall", ... */
const char *sa_detector_name(struct sa_mailbox *mb, long nr);

/* What a system call acts on (activation/calls.c, docs/syscalls.md): only SA_CALL_ANY calls,
 * and SA_CALL_ARGS calls whose arguments do not name the caller, may run on another kernel
 * thread (the eager and probe detectors move calls before they run). */
enum { SA_CALL_ANY, SA_CALL_DIRECT, SA_CALL_THREAD, SA_CALL_ARGS };
int sa_call_class(long nr);
/* With these arguments, does call `nr` depend on the calling kernel thread? */
int sa_call_thread_bound(long nr, const long args[6]);

/* Counters of the shim, for statistics and tests (process-wide). */
struct sa_counters {
	unsigned long activations;   /* kernel threads created */
	unsigned long spares;        /* parked in the pools now (movers too: docs/design.md) */
	unsigned long claims_won;    /* VPs taken from a blocked runner */
	unsigned long claims_lost;   /* the runner came back first */
	unsigned long moved;         /* calls moved to another activation */
	unsigned long sync_fallback; /* calls run synchronously: no spare could be had */
	unsigned long handoffs[SA_DETECT_COUNT]; /* blocked calls handed off, by the detector that
						    found them (index: enum sa_detector) */
	unsigned long idle_kicks;    /* the trap woke the idle standby or sent it to another CPU */
	unsigned long idle_class;    /* activations at SCHED_IDLE: standbys, and a VP's own ones
					kept for the next VP's when they cannot leave that policy (a
					VP's own standby that can becomes a spare when its VP goes) */
	unsigned long mask_stale;    /* claims that gave a flow a signal mask it had left in a way
					not recorded (siglongjmp, a raw system call): docs/design.md */
};
void sa_counters(struct sa_counters *c);

/* Test hook: make the next `n` attempts to create an activation fail (fault injection). */
void sa_inject_create_failures(int n);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
