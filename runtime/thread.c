/*
 * thread.c - user threads: spawn, exit, join, detach, and the pool of thread structures.
 *
 * A thread structure holds the thread's mailbox (struct sa_thr_mailbox), which a block
 * detector may read at any time while the VP exists, so structures are never freed: a joined
 * or detached thread goes back to the pool with its stack, and its mailbox's call counter
 * (tm_sys) keeps rising across reuse, so that a claimer's stale call number never matches.
 */
#include <linux/futex.h>
#include <sys/syscall.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "rt-internal.h"
#include "../activation/sa-valgrind.h"

static uint32_t pool_lk;
static struct rt_thread *pool;
static uint64_t next_id;

static void futex_wait(uint32_t *w, uint32_t val)
{
	syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(uint32_t *w)
{
	syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* A thread structure with a stack of `size` usable bytes, from the pool if one fits. */
static struct rt_thread *thread_get(size_t size)
{
	rt_spin_lock(&pool_lk);
	struct rt_thread **pp = &pool, *t;
	while ((t = *pp) && t->stack.size != size)
		pp = &t->pool_next;
	if (t)
		*pp = t->pool_next;
	rt_spin_unlock(&pool_lk);
	if (t)
		return t;
	t = aligned_alloc(64, (sizeof(*t) + 63) & ~(size_t)63);
	if (!t)
		return NULL;
	memset(t, 0, sizeof(*t));
	rt_set_state(t, RT_FREE);
	int e = rt_stack_alloc(&t->stack, size);
	if (e) {
		free(t); /* never seen by a VP: nothing can read its mailbox */
		errno = e;
		return NULL;
	}
	/* pooled with its stack for the process's life: never forgotten */
	sa_vg_stack_register(t->stack.lo, t->stack.size);
	return t;
}

static void thread_put(struct rt_thread *t)
{
	rt_set_state(t, RT_FREE);
	rt_san_fiber_free(&t->san);
	rt_spin_lock(&pool_lk);
	t->pool_next = pool;
	pool = t;
	rt_spin_unlock(&pool_lk);
}

/* The caller's floating-point control state, without the sticky exception flags: a new
 * thread starts with the rounding and masks of the thread that made it, as pthreads do. */
static void fp_env(uint32_t *mxcsr, uint16_t *fpucw)
{
	__asm__ volatile("stmxcsr %0" : "=m"(*mxcsr));
	__asm__ volatile("fnstcw %0" : "=m"(*fpucw));
	*mxcsr &= ~0x3fu;
}

static rt_thread_t *spawn(const struct rt_attr *attr, void *(*fn)(void *), void *arg)
{
	int pin = attr ? attr->vp : -1;
	size_t size = attr && attr->stack_size ? attr->stack_size : rt_g.stack_size;
	if (!__atomic_load_n(&rt_g.running, __ATOMIC_ACQUIRE) || !fn || pin < -1 ||
	    pin >= rt_g.nvp || size < 4096) {
		errno = EINVAL;
		return NULL;
	}
	size = rt_page_round(size);
	struct rt_thread *t = thread_get(size);
	if (!t)
		return NULL;

	/* Call numbers (tm_sys, even between calls) keep rising across reuse, so that a stale
	   claim never matches; each thread starts its own range (id << 32), so that no two
	   threads' calls share a number either (a detector's memory of "the call I saw" is then
	   unambiguous even by number alone). */
	uint64_t id = __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED);
	uint64_t sys = t->tm.tm_sys > id << 32 ? t->tm.tm_sys : id << 32;
	sa_thr_init(&t->tm);
	t->tm.tm_sys = sys;
	t->tm.tm_udata = t;
	t->id = id;
	t->pin = pin;
	t->stay = false;
	t->resume = 0;
	t->hooks = &rt_default_hooks;
	t->fn = fn;
	t->arg = arg;
	t->ret = NULL;
	t->jlk = 0;
	t->exited = 0;
	t->ext_waiter = 0;
	t->detached = t->joined = false;
	t->joiner = NULL;
	t->wnext = NULL;
	t->nopreempt = 1; /* until its first switch is finished (rt_thread_start) */

	/* the first switch to it "returns" into the trampoline, at the top of its stack */
	struct sa_context *c = &t->tm.tm_context;
	c->rsp = ((uintptr_t)t->stack.lo + t->stack.size - 16) & ~(uintptr_t)15;
	c->rip = (uintptr_t)rt_thread_trampoline;
	fp_env(&c->mxcsr, &c->fpucw);
	rt_san_unpoison(t->stack.lo, t->stack.size);
	rt_san_fiber_new(&t->san);

	struct rt_vp *here = rt_vp_self();
	if (pin >= 0)
		t->vp = rt_g.vps[pin];
	else if (here && here->cur)
		t->vp = here;     /* near its parent; idle VPs steal */
	else
		t->vp = rt_g.vps[__atomic_fetch_add(&rt_g.spawn_rr, 1, __ATOMIC_RELAXED) %
				 (unsigned)rt_g.nvp];
	__atomic_fetch_add(&rt_g.live, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&rt_g.spawned, 1, __ATOMIC_RELAXED);
	rt_make_ready(t);
	return t;
}

rt_thread_t *rt_spawn_attr(const struct rt_attr *attr, void *(*fn)(void *), void *arg)
{
	struct rt_thread *self = rt_enter();
	rt_thread_t *t = spawn(attr, fn, arg);
	rt_leave(self);
	return t;
}

rt_thread_t *rt_spawn(void *(*fn)(void *), void *arg)
{
	return rt_spawn_attr(NULL, fn, arg);
}

/* Called by rt_thread_trampoline (switch.S) on the new thread's stack. */
__attribute__((noreturn, used)) void rt_thread_start(void);
void rt_thread_start(void)
{
	struct rt_vp *vp = rt_vp_self();
	rt_finish_switch(vp);
	struct rt_thread *t = vp->cur;
	rt_preempt_on(t);
	rt_exit(t->fn(t->arg));
}

void rt_exit(void *ret)
{
	struct rt_vp *vp = rt_vp_self();
	struct rt_thread *self = vp ? vp->cur : NULL;
	if (!self) {
		fputs("rt_exit: not called from a user thread\n", stderr);
		abort();
	}
	rt_preempt_off(self); /* for good */
	self->ret = ret;
	rt_park(vp, self, RT_PREV_EXIT, NULL);
	__builtin_unreachable();
}

/* `t` has switched away for the last time (finish_switch): its stack is free. Tell a joiner,
 * or recycle it if it is detached. */
void rt_thread_finished(struct rt_thread *t)
{
	rt_spin_lock(&t->jlk);
	rt_set_state(t, RT_DEAD);
	__atomic_store_n(&t->exited, 1, __ATOMIC_RELEASE);
	struct rt_thread *joiner = t->joiner;
	bool detached = t->detached, ext = t->ext_waiter;
	rt_spin_unlock(&t->jlk);
	/* from here `t` may be recycled by its joiner: only the copies above are used */
	if (detached)
		thread_put(t);
	else if (joiner)
		rt_make_ready(joiner);
	else if (ext)
		futex_wake(&t->exited); /* a stray wake on a recycled structure is harmless */
	if (__atomic_sub_fetch(&rt_g.live, 1, __ATOMIC_ACQ_REL) == 0) {
		__atomic_fetch_add(&rt_g.live_zero, 1, __ATOMIC_RELEASE);
		futex_wake(&rt_g.live_zero);
	}
}

static int join(struct rt_vp *vp, struct rt_thread *self, rt_thread_t *t, void **ret)
{
	rt_spin_lock(&t->jlk);
	if (t->detached || t->joined || rt_state(t) == RT_FREE) {
		rt_spin_unlock(&t->jlk);
		return EINVAL;
	}
	t->joined = true;
	if (__atomic_load_n(&t->exited, __ATOMIC_ACQUIRE)) {
		rt_spin_unlock(&t->jlk);
	} else if (self) {
		/* park; the lock is released once our context is saved, and t's exit makes us
		   ready again */
		t->joiner = self;
		rt_set_state(self, RT_WAITING);
		rt_park(vp, self, RT_PREV_UNLOCK, &t->jlk);
	} else {
		t->ext_waiter = 1;
		rt_spin_unlock(&t->jlk);
		while (!__atomic_load_n(&t->exited, __ATOMIC_ACQUIRE))
			futex_wait(&t->exited, 0);
		/* `exited` is stored under jlk: once we hold jlk the exiting side has let go of t
		   for good, and t may be recycled */
		rt_spin_lock(&t->jlk);
		rt_spin_unlock(&t->jlk);
	}
	/* t->exited was stored after t->ret, under jlk, and read with acquire */
	if (ret)
		*ret = t->ret;
	thread_put(t);
	return 0;
}

int rt_join(rt_thread_t *t, void **ret)
{
	struct rt_vp *vp = rt_vp_self();
	struct rt_thread *self = vp ? vp->cur : NULL;
	if (!t)
		return EINVAL;
	if (t == self)
		return EDEADLK;
	if (self)
		rt_preempt_off(self);
	int r = join(vp, self, t, ret);
	if (self)
		rt_preempt_on(self);
	return r;
}

static int detach(rt_thread_t *t)
{
	rt_spin_lock(&t->jlk);
	if (t->detached || t->joined || rt_state(t) == RT_FREE) {
		rt_spin_unlock(&t->jlk);
		return EINVAL;
	}
	bool exited = __atomic_load_n(&t->exited, __ATOMIC_ACQUIRE);
	t->detached = true;
	rt_spin_unlock(&t->jlk);
	if (exited)
		thread_put(t);
	return 0;
}

int rt_detach(rt_thread_t *t)
{
	if (!t)
		return EINVAL;
	struct rt_thread *self = rt_enter();
	int r = detach(t);
	rt_leave(self);
	return r;
}

rt_thread_t *rt_self(void)
{
	struct rt_vp *vp = rt_vp_self();
	return vp ? vp->cur : NULL;
}

uint64_t rt_thread_id(const rt_thread_t *t)
{
	return t ? t->id : 0;
}
