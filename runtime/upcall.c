/*
 * upcall.c - the upcall handler: what the user-level scheduler does when the kernel (here, the
 * shim) tells it that a thread blocked or that blocked threads finished. Anderson et al.:
 *
 *   "Scheduler activation has blocked": the processor can run another thread.
 *   "Scheduler activation has unblocked": the thread goes back on the ready list.
 *
 * The handler runs on the VP's upcall stack, on whatever activation now owns the VP, wearing
 * the VP's identity (TLS, signal mask), with upcalls off (sa_curthread == NULL). It never
 * returns: it ends by loading a thread's context or by releasing the VP (sa_release), which
 * upcalls again when there is something to do.
 *
 * Policy hooks. What "blocked" and "unblocked" mean for a thread is its hooks' business
 * (struct rt_hooks, one pointer per thread). The runtime's policy is below. The paper's LAIO
 * is the other policy of the same mechanism: its "blocked" makes the thread a background
 * handle and resumes the caller's saved context with EINPROGRESS; its "unblocked" puts the
 * handle on the completed list and never resumes it (docs/runtime.md, "LAIO as hooks").
 */
#include <stdlib.h>
#include "rt-internal.h"

/* SA_BLOCKED: nothing to do for the thread itself; its result comes back on sa_completed. The
 * VP goes on with another thread. */
static struct rt_thread *default_blocked(struct rt_vp *vp, struct rt_thread *t)
{
	(void)vp;
	(void)t;
	return NULL;
}

/* The call finished: the thread is ready again, and its saved context will be resumed with
 * the call's result in the kernel's convention, so that sa_syscall() returns it and sets
 * errno as syscall() does. It resumes on this VP, the one it called from: errno is set in this
 * VP's TLS, and the caller may hold TLS addresses computed before the call (the compiler keeps
 * &errno across calls: glibc declares __errno_location() const). */
static void default_unblocked(struct rt_vp *vp, struct rt_thread *t)
{
	t->resume = sa_raw_result(&t->tm);
	t->vp = vp;
	t->stay = true;
	rt_make_ready(t);
}

/* The layer below broke its contract (say, two BLOCKED upcalls for one call): continuing
 * would run one thread on two VPs. Say so and stop. */
__attribute__((noreturn)) static void rt_protocol_broken(struct rt_vp *vp, const char *what,
							 struct rt_thread *t)
{
	rt_g.trace = 1;
	rt_trace(vp, "FATAL: %s (thread %lu, state %d)", what, (unsigned long)t->id, rt_state(t));
	abort();
}

const struct rt_hooks rt_default_hooks = { default_blocked, default_unblocked };

void rt_upcall(struct sa_mailbox *mb, struct sa_upcall *u)
{
	struct rt_vp *vp = rt_vp_of(mb);

	rt_san_upcall_enter(&vp->san);
	rt_san_on_stack(vp->upcall_stack, vp->upcall_stack_size);
	/* awake: wakers need not call sa_wakeup() until the VP parks again */
	__atomic_exchange_n(&vp->idle, 0, __ATOMIC_SEQ_CST);

	if (u->sa_event == SA_BLOCKED) {
		/* the running thread blocked in rt_syscall(); its context is in tm_context */
		struct rt_thread *t = rt_thread_of(u->sa_blocked);
		if (rt_state(t) != RT_RUNNING || vp->cur != t)
			rt_protocol_broken(vp, "SA_BLOCKED for a thread that is not running here", t);
		RT_STAT(vp, upcalls_blocked);
		vp->cur = NULL;
		rt_set_state(t, RT_BLOCKED);
		if (__builtin_expect(rt_g.traced, 0))
			rt_trace_blocked(vp, t, u);
		struct rt_thread *run = t->hooks->blocked(vp, t);
		if (run)
			rt_run_from_upcall(vp, run);
	} else {
		/* the VP had released itself; these threads finished their calls */
		RT_STAT(vp, upcalls_unblocked);
		if (__builtin_expect(rt_g.traced, 0))
			rt_trace_unblocked(vp, u);
		rt_complete(vp, u->sa_done, false);
	}
	/* run the next ready thread (completions that arrived meanwhile included), or release
	   the processor if there is none */
	rt_vp_idle(vp);
}
