/*
 * sched.c - run queues, the switch between user threads, and the idle loop of a VP.
 *
 * Run queues. Each VP has two liburcu wait-free queues (wfcqueue): `rq` for threads that may
 * run anywhere and `pin` for threads bound to this VP. Any thread enqueues without a lock (an
 * xchg on the tail: a full barrier). Only the VP dequeues from `pin`; the VP and idle VPs
 * (thieves) dequeue from `rq`, which needs mutual exclusion among dequeuers: a spinlock
 * (rq_lock) that the owner takes and a thief only tries. A ready thread goes to the queue of
 * the VP it last ran on (or is pinned to); an idle VP steals from the others before it parks.
 * A thread whose blocked call completed goes to `pin` for that one run: it returns from
 * rt_syscall() on the VP where it made the call.
 *
 * The switch. A thread leaves its VP in rt_yield() or rt_park() with the next ready thread or,
 * if there is none, with the VP's scheduler context (the idle loop on the upcall stack). Its
 * own context is saved by the switch, and only then may it be published: put on a run queue
 * (yield), its wait-object lock released (park) or its stack given up (exit). That is done by
 * rt_finish_switch(), which the code that runs next on the same VP calls first (Linux calls it
 * finish_task_switch()): after rt_ctx_switch() returns, in the thread trampoline, after
 * sa_syscall() returns in rt_syscall(), and on entry to the idle loop.
 *
 * Idle and wakeup. An idle VP spins a little looking for work (a wakeup across vCPUs costs
 * ~39 us here), then sets vp->idle and parks in sa_release(). Whoever makes a thread ready on
 * an idle VP clears vp->idle and calls sa_wakeup(). No lost wakeup: the enqueuer's xchg on the
 * queue tail, then its load of vp->idle, against the VP's xchg of vp->idle, then its look at
 * the queue: at least one sees the other (and sa_wakeup() on a VP that is not parked yet makes
 * its next sa_release() return at once). Completions of blocked calls wake the VP through the
 * shim (docs/protocol.md, T8 against R2/R3).
 */
#include <sys/syscall.h>
#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include "rt-internal.h"

__thread struct rt_vp *rt_tls_vp __attribute__((tls_model("initial-exec")));

void rt_spin_lock(uint32_t *lk)
{
	for (;;) {
		if (!__atomic_exchange_n(lk, 1, __ATOMIC_ACQUIRE))
			return;
		/* the holder is a few instructions from the unlock unless its kernel thread was
		   preempted: then let it run */
		for (int n = 0; __atomic_load_n(lk, __ATOMIC_RELAXED); n++) {
			__builtin_ia32_pause();
			if (n == 256) {
				syscall(SYS_sched_yield);
				n = 0;
			}
		}
	}
}

/* ---- run queues ---- */

/* ThreadSanitizer cannot see liburcu's atomics (inline asm): in its builds a lock around every
   queue operation shows it the ordering that the queue's xchg provides. */
#ifdef RT_TSAN
#define Q_LOCK(vp) rt_spin_lock(&(vp)->tsan_qlock)
#define Q_UNLOCK(vp) rt_spin_unlock(&(vp)->tsan_qlock)
#else
#define Q_LOCK(vp) ((void)0)
#define Q_UNLOCK(vp) ((void)0)
#endif

void rt_vp_queues_init(struct rt_vp *vp)
{
	__cds_wfcq_init(&vp->rq_head, &vp->rq_tail);
	__cds_wfcq_init(&vp->pin_head, &vp->pin_tail);
}

/* Returns whether other threads were queued already (a hint: then there is work to steal). */
static bool enqueue(struct rt_vp *vp, struct rt_thread *t)
{
	bool others;
	cds_wfcq_node_init(&t->rq_node);
	rt_san_release(t);
	Q_LOCK(vp);
	if (t->pin >= 0 || t->stay)
		others = cds_wfcq_enqueue(&vp->pin_head, &vp->pin_tail, &t->rq_node);
	else
		others = cds_wfcq_enqueue(&vp->rq_head, &vp->rq_tail, &t->rq_node);
	Q_UNLOCK(vp);
	return others;
}

/* Dequeue from one of vp's queues (the caller excludes other dequeuers of that queue). */
static struct rt_thread *dequeue(struct rt_vp *vp, bool pinned, bool blocking)
{
	struct cds_wfcq_node *n;
	Q_LOCK(vp);
	if (pinned)
		n = __cds_wfcq_dequeue_blocking(&vp->pin_head, &vp->pin_tail);
	else if (blocking)
		n = __cds_wfcq_dequeue_blocking(&vp->rq_head, &vp->rq_tail);
	else
		n = __cds_wfcq_dequeue_nonblocking(&vp->rq_head, &vp->rq_tail);
	Q_UNLOCK(vp);
	if (!n || n == CDS_WFCQ_WOULDBLOCK)
		return NULL;
	struct rt_thread *t = caa_container_of(n, struct rt_thread, rq_node);
	rt_san_acquire(t);
	return t;
}

static bool q_empty(struct rt_vp *vp, bool pinned)
{
	Q_LOCK(vp);
	bool e = pinned ? cds_wfcq_empty(&vp->pin_head, &vp->pin_tail)
			: cds_wfcq_empty(&vp->rq_head, &vp->rq_tail);
	Q_UNLOCK(vp);
	return e;
}

static bool local_empty(struct rt_vp *vp)
{
	return q_empty(vp, true) && q_empty(vp, false);
}

/* The next ready thread of this VP: the two queues in turn, so neither starves the other. */
static struct rt_thread *pick_local(struct rt_vp *vp)
{
	bool pin_first = vp->pick++ & 1;
	for (int k = 0; k < 2; k++) {
		struct rt_thread *t = NULL;
		if ((k == 0) == pin_first) {
			if (!q_empty(vp, true))
				t = dequeue(vp, true, true);
		} else if (!q_empty(vp, false)) {
			rt_spin_lock(&vp->rq_lock);
			t = dequeue(vp, false, true);
			rt_spin_unlock(&vp->rq_lock);
		}
		if (t)
			return t;
	}
	return NULL;
}

/* Take one thread from another VP's shared queue. Only tries: a busy lock means its owner or
 * another thief is there, and waiting for it would be worse than looking elsewhere. */
static struct rt_thread *steal(struct rt_vp *self)
{
	int n = rt_g.nvp;
	for (int i = 1; i < n; i++) {
		struct rt_vp *v = rt_g.vps[(self->id + i) % n];
		if (q_empty(v, false) || __atomic_exchange_n(&v->rq_lock, 1, __ATOMIC_ACQUIRE))
			continue;
		struct rt_thread *t = dequeue(v, false, false);
		rt_spin_unlock(&v->rq_lock);
		if (t) {
			RT_STAT(self, steals);
			RT_TRACE(self, "steals thread %lu from vp%d", (unsigned long)t->id, v->id);
			return t;
		}
	}
	return NULL;
}

static bool stealable_elsewhere(struct rt_vp *self)
{
	for (int i = 1; i < rt_g.nvp; i++) {
		struct rt_vp *v = rt_g.vps[(self->id + i) % rt_g.nvp];
		if (!q_empty(v, false))
			return true;
	}
	return false;
}

/* Wake `vp` if it is idle. The xchg makes one waker do it. */
static bool kick(struct rt_vp *vp)
{
	if (__atomic_load_n(&vp->idle, __ATOMIC_SEQ_CST) &&
	    __atomic_exchange_n(&vp->idle, 0, __ATOMIC_SEQ_CST)) {
		sa_wakeup(&vp->mb);
		return true;
	}
	return false;
}

/* `t` (not running, context saved) can run again: queue it on its VP and see that a VP will
 * get to it. Any thread may call this. */
void rt_make_ready(struct rt_thread *t)
{
	bool pinned = t->pin >= 0 || t->stay;
	struct rt_vp *vp = t->pin >= 0 ? rt_g.vps[t->pin] : t->vp;
	rt_set_state(t, RT_READY);
	/* from the enqueue on, t may run elsewhere: use only what was read before */
	bool others = enqueue(vp, t); /* full barrier (xchg), then the load of vp->idle */
	if (kick(vp) || pinned || !others)
		return;
	/* vp is busy and has more ready work than this one thread: let an idle VP steal */
	for (int i = 1; i < rt_g.nvp; i++)
		if (kick(rt_g.vps[(vp->id + i) % rt_g.nvp]))
			return;
}

/* ---- completions: blocked calls that finished ---- */

/* Each finished thread (a list from an SA_UNBLOCKED upcall or from sa_take_completed())
 * goes to its policy's "unblocked" hook: by default it becomes ready with its result. */
void rt_complete(struct rt_vp *vp, struct sa_thr_mailbox *done, bool polled)
{
	while (done) {
		struct rt_thread *t = rt_thread_of(done);
		done = done->tm_link;
		RT_STAT(vp, completions);
		if (polled)
			RT_STAT(vp, polled);
		if (__builtin_expect(rt_g.traced, 0))
			rt_trace_finished(vp, t, polled);
		t->hooks->unblocked(vp, t);
	}
}

/* A scheduling point: notice completions without waiting for an upcall. */
void rt_take_completions(struct rt_vp *vp)
{
	if (sa_has_completed(&vp->mb))
		rt_complete(vp, sa_take_completed(&vp->mb), true);
}

/* ---- switching ---- */

static void run_here(struct rt_vp *vp, struct rt_thread *t)
{
	vp->cur = t;
	rt_set_state(t, RT_RUNNING);
	t->vp = vp;
	t->stay = false;
	RT_STAT(vp, switches);
	/* a new time slice: the preemption ticker measures slices by this number */
	__atomic_store_n(&vp->run_seq, __atomic_load_n(&vp->run_seq, __ATOMIC_RELAXED) + 1,
			 __ATOMIC_RELAXED);
	/* upcalls for t's calls from now on. A release store, a plain mov: upcalls only happen
	   inside sa_syscall() and sa_release(), never between here and the context load. */
	__atomic_store_n(&vp->mb.sa_curthread, &t->tm, __ATOMIC_RELEASE);
}

/* From the scheduler context (upcall stack): run `t`; the upcall stack is abandoned. */
void rt_run_from_upcall(struct rt_vp *vp, struct rt_thread *t)
{
	long v = t->resume;
	t->resume = 0;
	RT_TRACE(vp, "runs thread %lu", (unsigned long)t->id);
	run_here(vp, t);
	rt_san_switch_to(&t->san);
	sa_switch_to(&vp->mb, &t->tm, &t->tm.tm_context, v);
}

/* The code that runs after a switch, on the VP that made it (see the top of this file). */
void rt_finish_switch(struct rt_vp *vp)
{
	struct rt_thread *cur = vp->cur;
	if (cur)
		rt_san_on_stack(cur->stack.lo, cur->stack.size);
	else
		rt_san_on_stack(vp->upcall_stack, vp->upcall_stack_size);
	struct rt_thread *prev = vp->prev;
	if (!prev)
		return;
	vp->prev = NULL;
	switch (vp->prev_action) {
	case RT_PREV_REQUEUE:
		rt_make_ready(prev);
		break;
	case RT_PREV_UNLOCK:
		rt_spin_unlock(vp->prev_lock);
		break;
	case RT_PREV_EXIT:
		rt_thread_finished(prev);
		break;
	}
}

static void idle_entry(void *arg)
{
	struct rt_vp *vp = arg;
	rt_finish_switch(vp);
	rt_vp_idle(vp);
}

/* Leave `self` (running on vp) with `action` for finish_switch; returns when it is resumed.
 * Runs the next ready thread of this VP, or goes idle if there is none. */
void rt_park(struct rt_vp *vp, struct rt_thread *self, int action, uint32_t *lock)
{
	rt_take_completions(vp);
	struct rt_thread *next = pick_local(vp);
	vp->prev = self;
	vp->prev_action = action;
	vp->prev_lock = lock;
	if (next)
		RT_TRACE(vp, "thread %lu %s; runs thread %lu", (unsigned long)self->id,
			 action == RT_PREV_EXIT ? "exits" : "waits", (unsigned long)next->id);
	else
		RT_TRACE(vp, "thread %lu %s; nothing else ready here", (unsigned long)self->id,
			 action == RT_PREV_EXIT ? "exits" : "waits");
	if (next) {
		long v = next->resume;
		next->resume = 0;
		run_here(vp, next);
		rt_san_switch_to(&next->san);
		rt_ctx_switch(&self->tm.tm_context, &next->tm.tm_context, v);
	} else {
		/* nothing here: the scheduler context steals or releases the VP. self must not
		   stay sa_curthread: another VP may resume it once it is published. */
		vp->cur = NULL;
		__atomic_store_n(&vp->mb.sa_curthread, NULL, __ATOMIC_RELEASE);
		rt_san_switch_to(&vp->san);
		rt_ctx_start(&self->tm.tm_context, idle_entry, vp,
			     vp->upcall_stack + vp->upcall_stack_size);
	}
	rt_finish_switch(rt_vp_self()); /* possibly another VP now */
}

/* Switch from `self` to `next` (both of this VP); self goes back on a run queue once saved. */
static void switch_requeue(struct rt_vp *vp, struct rt_thread *self, struct rt_thread *next)
{
	vp->prev = self;
	vp->prev_action = RT_PREV_REQUEUE;
	long v = next->resume;
	next->resume = 0;
	run_here(vp, next);
	rt_san_switch_to(&next->san);
	rt_ctx_switch(&self->tm.tm_context, &next->tm.tm_context, v);
	rt_finish_switch(rt_vp_self());
}

void rt_yield(void)
{
	struct rt_vp *vp = rt_vp_self();
	if (!vp || !vp->cur) {
		syscall(SYS_sched_yield);
		return;
	}
	struct rt_thread *self = vp->cur;
	rt_preempt_off(self);
	rt_take_completions(vp);
	struct rt_thread *next = pick_local(vp);
	if (next) {
		RT_TRACE(vp, "thread %lu yields to thread %lu", (unsigned long)self->id,
			 (unsigned long)next->id);
		switch_requeue(vp, self, next);
	}
	rt_preempt_on(self);
}

/* End the time slice of `self`, the running thread (preempt.c, guard raised): run the next
 * ready thread of this VP, if any, and return when self runs again. Unlike a yield, self
 * stays on this VP: it was stopped at an arbitrary instruction, which may hold the address
 * of a variable in the VP's TLS (errno's, say) in a register. Returns whether it switched. */
bool rt_preempt_switch(struct rt_vp *vp, struct rt_thread *self, bool deferred)
{
	__atomic_store_n(&vp->preempt_seq, 0, __ATOMIC_RELAXED);
	rt_take_completions(vp);
	struct rt_thread *next = pick_local(vp);
	if (!next)
		return false;
	RT_STAT(vp, preemptions);
	RT_TRACE(vp, "preempted thread %lu after %lu us%s; runs thread %lu", (unsigned long)self->id,
		 (unsigned long)((rt_now_ns() - __atomic_load_n(&vp->tick_seen_ns, __ATOMIC_RELAXED)) /
				 1000), deferred ? " (at a safe point)" : "", (unsigned long)next->id);
	self->stay = true;
	switch_requeue(vp, self, next);
	return true;
}

/* ---- the idle loop (scheduler context, on the upcall stack) ---- */

/* Is there anything for vp to run besides its current thread? Any thread; a hint. */
bool rt_vp_has_work(struct rt_vp *vp)
{
	return !local_empty(vp) || sa_has_completed(&vp->mb);
}

static bool work_visible(struct rt_vp *vp)
{
	return !local_empty(vp) || sa_has_completed(&vp->mb) || stealable_elsewhere(vp);
}

/* Stop the VP (rt_shutdown): back to its kernel thread's own context, which returns. */
__attribute__((noreturn)) static void vp_leave(struct rt_vp *vp)
{
	__atomic_store_n(&vp->mb.sa_curthread, NULL, __ATOMIC_RELEASE);
	rt_san_switch_to(&vp->san_home);
	sa_switch_to(&vp->mb, NULL, &vp->home, 0);
}

/* Run the next ready thread, stealing if this VP has none; else release the VP until work
 * arrives (the SA_UNBLOCKED upcall comes back through rt_upcall() to here). Never returns. */
void rt_vp_idle(struct rt_vp *vp)
{
	for (;;) {
		rt_take_completions(vp);
		struct rt_thread *t = pick_local(vp);
		if (!t)
			t = steal(vp);
		if (t)
			rt_run_from_upcall(vp, t);
		if (__atomic_load_n(&vp->stop, __ATOMIC_ACQUIRE))
			vp_leave(vp);
		/* spin first: work that arrives now costs no wakeup */
		uint64_t until = rt_now_ns() + rt_g.idle_spin_ns;
		bool found = false;
		while (!found && rt_now_ns() < until) {
			for (int i = 0; i < 32 && !found; i++) {
				__builtin_ia32_pause();
				found = work_visible(vp);
			}
		}
		if (found)
			continue;
		__atomic_exchange_n(&vp->idle, 1, __ATOMIC_SEQ_CST);
		if (work_visible(vp) || __atomic_load_n(&vp->stop, __ATOMIC_ACQUIRE)) {
			/* if a waker cleared idle first, its sa_wakeup() only makes a later
			   sa_release() return at once: harmless */
			__atomic_exchange_n(&vp->idle, 0, __ATOMIC_SEQ_CST);
			continue;
		}
		RT_STAT(vp, parks);
		RT_TRACE(vp, "nothing to run: releases the processor (sa_release)");
		sa_release(&vp->mb, NULL);
		abort(); /* sa_release() returns only for a bad timeout */
	}
}
