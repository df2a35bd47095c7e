/*
 * trace.c - a line per scheduling event (RT_TRACE=1) and the timeline (RT_TRACE_FILE), in the
 * format shared with the LAIO layer (trace/trace.h, docs/tracing.md).
 *
 * It runs in upcall handlers and between user threads, where it must not block in the runtime,
 * take a stdio lock nor change errno: lines go out with one write(2) each, timeline records into
 * the VP's preallocated buffer. The kernel thread id shows the activation: it changes when a
 * call blocks and a spare takes the VP.
 */
#include <errno.h>
#include <stdarg.h>
#include "rt-internal.h"

void rt_trace(struct rt_vp *vp, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sa_trace_vline("rt", vp ? vp->id : -1, sa_trace_tid(vp ? &vp->mb : NULL), fmt, ap);
	va_end(ap);
}

/* A call of thread t that did not block: its span from rt_syscall()'s start to now. */
void rt_trace_call(struct rt_vp *vp, struct rt_thread *t, long ret, int err)
{
	if (vp && vp->tl)
		sa_tl_call(vp->tl, &t->tc, vp->id, sa_trace_tid(&vp->mb), t->id, ret, err);
}

/* Who caught the block and which way it was handed off, from the shim (sa_upcall). */
void rt_trace_blocked(struct rt_vp *vp, struct rt_thread *t, const struct sa_upcall *u)
{
	char cb[200], hb[120];
	sa_trace_call_blocked(&t->tc, u, vp->tl != NULL);
	if (rt_g.trace)
		rt_trace(vp, "upcall BLOCKED: thread %lu blocked in %s, h%lu; %s%s", (unsigned long)t->id,
			 sa_trace_call_text(cb, sizeof cb, &t->tc), t->tc.hno,
			 sa_trace_handoff(hb, sizeof hb, &t->tc),
			 t->tc.moved ? ", the VP stays here" : "");
	if (vp->tl)
		sa_tl_blocked(vp->tl, &t->tc, vp->id, sa_trace_tid(&vp->mb), t->id);
}

void rt_trace_unblocked(struct rt_vp *vp, const struct sa_upcall *u)
{
	RT_TRACE(vp, "upcall UNBLOCKED%s", u->sa_done ? ": blocked calls finished"
		 : u->sa_timedout ? ": timeout" : ": woken, work may have arrived");
	if (!vp->tl)
		return;
	struct sa_tl_rec r = { .kind = SA_TL_UNBLOCKED, .timedout = (uint8_t)u->sa_timedout,
			       .tid = sa_trace_tid(&vp->mb), .vp = vp->id, .ts = sa_trace_now() };
	for (struct sa_thr_mailbox *m = u->sa_done; m; m = m->tm_link)
		r.count++;
	sa_tl_add(vp->tl, &r);
}

/* A blocked call finished and vp learnt it: the line, the call's whole span on the kernel
 * thread that executed it, and the point where its thread is made ready again. */
void rt_trace_finished(struct rt_vp *vp, struct rt_thread *t, bool polled)
{
	char nb[24];
	RT_TRACE(vp, "thread %lu: h%lu %s finished (%ld, errno %d)%s", (unsigned long)t->id,
		 t->tc.hno, sa_trace_call_name(t->tc.nr, nb), t->tm.tm_retval, t->tm.tm_errno,
		 polled ? ", seen at a scheduling point (no upcall)" : "");
	if (!vp->tl || !t->tc.hno)
		return;
	sa_tl_call_finished(vp->tl, &t->tc, vp->id, t->id, t->tm.tm_retval, t->tm.tm_errno,
			    t->tm.tm_done_ns);
	sa_tl_done(vp->tl, &t->tc, vp->id, sa_trace_tid(&vp->mb), t->id, t->tm.tm_retval,
		   t->tm.tm_errno);
}
