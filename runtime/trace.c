/*
 * trace.c - a line per scheduling event (RT_TRACE=1) and the timeline (RT_TRACE_FILE), in the
 * format shared with the LAIO layer (activation/trace.h, docs/tracing.md).
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
void rt_trace_call(struct rt_vp *vp, struct rt_thread *t, long nr, long ret, int err)
{
	if (!vp || !vp->tl)
		return;
	struct sa_tl_rec r = { .kind = SA_TL_CALL, .tid = sa_trace_tid(&vp->mb), .vp = vp->id,
			       .nr = nr, .ret = ret, .err = ret == -1 ? err : 0, .ts = t->tl_start,
			       .t_end = sa_trace_now(), .thread = t->id };
	for (int i = 0; i < 6; i++)
		r.args[i] = t->tl_args[i];
	sa_tl_add(vp->tl, &r);
}

/* Who caught the block and which way it was handed off, from the shim (sa_upcall). */
void rt_trace_blocked(struct rt_vp *vp, struct rt_thread *t, const struct sa_upcall *u)
{
	char nb[24], ab[160];
	t->tl_hno = sa_trace_next_handle();
	t->tl_call_tid = u->sa_call_tid;
	t->tl_detector = (int8_t)u->sa_detector;
	t->tl_moved = (uint8_t)u->sa_moved;
	t->tl_block = vp->tl ? sa_trace_now() : 0;
	sa_trace_args(ab, sizeof ab, t->nr, t->tl_args);
	if (rt_g.trace && u->sa_moved)
		rt_trace(vp, "upcall BLOCKED: thread %lu blocked in %s(%s), h%lu; %s caught it: call "
			 "moved to kt %d, the VP stays here", (unsigned long)t->id,
			 sa_trace_call_name(t->nr, nb), ab, t->tl_hno,
			 sa_trace_detector_name(u->sa_detector), u->sa_call_tid);
	else if (rt_g.trace)
		rt_trace(vp, "upcall BLOCKED: thread %lu blocked in %s(%s), h%lu; %s caught it: VP "
			 "moved to a spare (this kt), kt %d keeps the call", (unsigned long)t->id,
			 sa_trace_call_name(t->nr, nb), ab, t->tl_hno,
			 sa_trace_detector_name(u->sa_detector), u->sa_call_tid);
	if (!vp->tl)
		return;
	struct sa_tl_rec r = { .kind = SA_TL_BLOCKED, .detector = t->tl_detector,
			       .moved = t->tl_moved, .tid = sa_trace_tid(&vp->mb),
			       .call_tid = t->tl_call_tid, .vp = vp->id, .nr = t->nr,
			       .ts = t->tl_block, .hno = t->tl_hno, .thread = t->id };
	sa_tl_add(vp->tl, &r);
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
		 t->tl_hno, sa_trace_call_name(t->nr, nb), t->tm.tm_retval, t->tm.tm_errno,
		 polled ? ", seen at a scheduling point (no upcall)" : "");
	if (!vp->tl || !t->tl_hno)
		return;
	struct sa_tl_rec r = { .kind = SA_TL_CALL, .detector = t->tl_detector, .moved = t->tl_moved,
			       .tid = t->tl_call_tid, .call_tid = t->tl_call_tid, .vp = vp->id,
			       .nr = t->nr, .ret = t->tm.tm_retval, .err = t->tm.tm_errno,
			       .ts = t->tl_start, .t_block = t->tl_block,
			       .t_end = sa_trace_since_origin(t->tm.tm_done_ns), .hno = t->tl_hno,
			       .thread = t->id };
	for (int i = 0; i < 6; i++)
		r.args[i] = t->tl_args[i];
	sa_tl_add(vp->tl, &r);
	r.kind = SA_TL_DONE;
	r.tid = sa_trace_tid(&vp->mb);
	r.ts = sa_trace_now();
	sa_tl_add(vp->tl, &r);
}
