/*
 * sync.c - mutexes and condition variables that park the user thread, not the kernel thread.
 *
 * Each object has a spinlock (held for a few instructions) over a FIFO of parked threads. A
 * thread that must wait appends itself and parks with the spinlock still held; the lock is
 * released by finish_switch() once its context is saved, so a waker that takes the lock and
 * makes it ready can never resume a half-saved context. Unlock hands the mutex to the first
 * waiter (no barging): FIFO and fair, at the price of a switch per contended handoff.
 *
 * Every entry point raises the caller's preemption guard (rt_enter): a thread preempted while
 * it holds one of these spinlocks would leave the others of its VP spinning on it.
 */
#include <errno.h>
#include "rt-internal.h"

static struct rt_thread *current(struct rt_vp **vpp)
{
	struct rt_vp *vp = rt_vp_self();
	*vpp = vp;
	return vp ? vp->cur : NULL;
}

static void wait_append(struct rt_thread **head, struct rt_thread **tail, struct rt_thread *t)
{
	t->wnext = NULL;
	if (*tail)
		(*tail)->wnext = t;
	else
		*head = t;
	*tail = t;
}

static struct rt_thread *wait_pop(struct rt_thread **head, struct rt_thread **tail)
{
	struct rt_thread *t = *head;
	if (t) {
		*head = t->wnext;
		if (!*head)
			*tail = NULL;
		t->wnext = NULL;
	}
	return t;
}

int rt_mutex_init(rt_mutex_t *m)
{
	*m = (rt_mutex_t)RT_MUTEX_INIT;
	return 0;
}

static int mutex_lock(struct rt_vp *vp, struct rt_thread *self, rt_mutex_t *m)
{
	rt_spin_lock(&m->lk);
	if (!m->locked) {
		m->locked = 1;
		m->owner = self;
		rt_spin_unlock(&m->lk);
		return 0;
	}
	if (m->owner == self) {
		rt_spin_unlock(&m->lk);
		return EDEADLK;
	}
	wait_append(&m->wait_head, &m->wait_tail, self);
	rt_set_state(self, RT_WAITING);
	rt_park(vp, self, RT_PREV_UNLOCK, &m->lk);
	/* rt_mutex_unlock() made us the owner before it made us ready */
	return 0;
}

int rt_mutex_lock(rt_mutex_t *m)
{
	struct rt_vp *vp;
	struct rt_thread *self = current(&vp);
	if (!self)
		return EPERM;
	rt_preempt_off(self);
	int r = mutex_lock(vp, self, m);
	rt_preempt_on(self);
	return r;
}

int rt_mutex_trylock(rt_mutex_t *m)
{
	struct rt_vp *vp;
	struct rt_thread *self = current(&vp);
	if (!self)
		return EPERM;
	rt_preempt_off(self);
	rt_spin_lock(&m->lk);
	int r = EBUSY;
	if (!m->locked) {
		m->locked = 1;
		m->owner = self;
		r = 0;
	}
	rt_spin_unlock(&m->lk);
	rt_preempt_on(self);
	return r;
}

static int mutex_unlock(struct rt_thread *self, rt_mutex_t *m)
{
	rt_spin_lock(&m->lk);
	if (!m->locked || m->owner != self) {
		rt_spin_unlock(&m->lk);
		return EPERM;
	}
	struct rt_thread *w = wait_pop(&m->wait_head, &m->wait_tail);
	m->owner = w;
	m->locked = w != NULL;
	rt_spin_unlock(&m->lk);
	if (w)
		rt_make_ready(w);
	return 0;
}

int rt_mutex_unlock(rt_mutex_t *m)
{
	struct rt_vp *vp;
	struct rt_thread *self = current(&vp);
	if (!self)
		return EPERM;
	rt_preempt_off(self);
	int r = mutex_unlock(self, m);
	rt_preempt_on(self);
	return r;
}

int rt_cond_init(rt_cond_t *c)
{
	*c = (rt_cond_t)RT_COND_INIT;
	return 0;
}

static int cond_wait(struct rt_vp *vp, struct rt_thread *self, rt_cond_t *c, rt_mutex_t *m)
{
	rt_spin_lock(&m->lk);
	bool mine = m->locked && m->owner == self;
	rt_spin_unlock(&m->lk);
	if (!mine)
		return EPERM;
	/* on the wait list before the mutex is released: a signal sent after the caller's
	   check of its predicate cannot be missed. Lock order: c->lk, then m->lk. */
	rt_spin_lock(&c->lk);
	wait_append(&c->wait_head, &c->wait_tail, self);
	rt_set_state(self, RT_WAITING);
	rt_mutex_unlock(m);
	rt_park(vp, self, RT_PREV_UNLOCK, &c->lk);
	return rt_mutex_lock(m);
}

int rt_cond_wait(rt_cond_t *c, rt_mutex_t *m)
{
	struct rt_vp *vp;
	struct rt_thread *self = current(&vp);
	if (!self)
		return EPERM;
	rt_preempt_off(self);
	int r = cond_wait(vp, self, c, m);
	rt_preempt_on(self);
	return r;
}

int rt_cond_signal(rt_cond_t *c)
{
	struct rt_thread *self = rt_enter();
	rt_spin_lock(&c->lk);
	struct rt_thread *w = wait_pop(&c->wait_head, &c->wait_tail);
	rt_spin_unlock(&c->lk);
	if (w)
		rt_make_ready(w);
	rt_leave(self);
	return 0;
}

int rt_cond_broadcast(rt_cond_t *c)
{
	struct rt_thread *self = rt_enter();
	rt_spin_lock(&c->lk);
	struct rt_thread *w = c->wait_head;
	c->wait_head = c->wait_tail = NULL;
	rt_spin_unlock(&c->lk);
	while (w) {
		struct rt_thread *next = w->wnext;
		w->wnext = NULL;
		rt_make_ready(w);
		w = next;
	}
	rt_leave(self);
	return 0;
}
