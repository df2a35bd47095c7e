/*
 * upcall_handler.c - LAIO's upcall handler: the paper's section 5, step by step.
 *
 * Blocking upcall: the flow running under current_handle blocked in laio_syscall(). Its handle
 * becomes the background handle, the flow gets a fresh handle, and the context laio_syscall()
 * saved is resumed so that the call returns -1 with errno EINPROGRESS. The blocked thread is
 * never resumed: its result arrives on the completed list.
 *
 * Unblocking upcall (after laio_poll() released the VP): finished background calls move to the
 * completed list and laio_poll() is resumed to report them.
 */
#include <errno.h>
#include <stddef.h>
#include "laio-internal.h"

static struct laio_state *state_of(struct sa_mailbox *mb)
{
	return (struct laio_state *)((char *)mb - offsetof(struct laio_state, mb));
}

/* Who caught the block and which way it was handed off, from the shim (sa_upcall). */
static void trace_blocked(struct laio_state *ls, struct laio_handle *h, const struct sa_upcall *u)
{
	char cb[200], hb[120];
	sa_trace_call_blocked(&h->tc, u, ls->tl != NULL);
	laio_trace(ls, "upcall BLOCKED: %s is h%lu in the background; %s%s",
		   sa_trace_call_text(cb, sizeof cb, &h->tc), h->tc.hno,
		   sa_trace_handoff(hb, sizeof hb, &h->tc),
		   h->tc.moved ? ", the flow stays here and gets EINPROGRESS"
			       : "; the flow gets EINPROGRESS");
	if (ls->tl)
		sa_tl_blocked(ls->tl, &h->tc, ls->vp_no, sa_trace_tid(&ls->mb), 0);
}

static void blocked(struct laio_state *ls, struct laio_handle *h, const struct sa_upcall *u)
{
	ls->background_handle = h;              /* laio_desc_bg = current_thread */
	h->state = H_BACKGROUND;
	ls->current_handle = laio_handle_alloc(ls); /* current_thread = a fresh mailbox */
	ls->st.blocked++;
	if (++ls->st.in_flight > ls->st.peak_in_flight)
		ls->st.peak_in_flight = ls->st.in_flight;
	laio_update_limit(ls);
	if (ls->traced)
		trace_blocked(ls, h, u);
}

/* A background call finished: its line, and its whole span for the timeline (it started in
 * the flow, ended on the kernel thread that executed it). */
static void trace_finished(struct laio_state *ls, struct laio_handle *h, bool upcall)
{
	char nb[24];
	laio_trace(ls, "%sh%lu finished: %s = %ld (errno %d)%s", upcall ? "upcall UNBLOCKED: " : "",
		   h->tc.hno, sa_trace_call_name(h->tc.nr, nb), h->tm.tm_retval, h->tm.tm_errno,
		   upcall ? "" : ", seen by laio_poll without an upcall");
	if (ls->tl && h->tc.hno)
		sa_tl_call_finished(ls->tl, &h->tc, ls->vp_no, 0, h->tm.tm_retval, h->tm.tm_errno,
				    h->tm.tm_done_ns);
}

/* Finished threads join the completed list, oldest first; they are never resumed. */
void laio_completed_append(struct laio_state *ls, struct sa_thr_mailbox *done, bool upcall)
{
	while (done) {
		struct laio_handle *h = (struct laio_handle *)done;
		done = done->tm_link;
		h->state = H_COMPLETED;
		h->next = NULL;
		if (ls->completed_tail)
			ls->completed_tail->next = h;
		else
			ls->completed_head = h;
		ls->completed_tail = h;
		if (ls->traced)
			trace_finished(ls, h, upcall);
	}
}

/* The upcall's work, in a function that returns: where the VP goes on, and with what value. */
static const struct sa_context *upcall_work(struct laio_state *ls, struct sa_upcall *u,
					    long *value)
{
	ls->st.upcalls++;
	if (u->sa_event == SA_BLOCKED) {
		struct laio_handle *h = (struct laio_handle *)u->sa_blocked;
		blocked(ls, h, u);
		/* the blocked handle's saved context stays intact: its activation only writes the
		   result fields. Upcalls stay off (sa_curthread NULL) until the next call. */
		*value = -EINPROGRESS;
		return &h->tm.tm_context;
	}
	if (ls->tl) {
		struct sa_tl_rec rec = { .kind = SA_TL_UNBLOCKED, .timedout = (uint8_t)u->sa_timedout,
					 .tid = sa_trace_tid(&ls->mb), .vp = ls->vp_no,
					 .ts = sa_trace_now() };
		for (struct sa_thr_mailbox *m = u->sa_done; m; m = m->tm_link)
			rec.count++;
		sa_tl_add(ls->tl, &rec);
	}
	laio_completed_append(ls, u->sa_done, true);
	ls->poll_timedout = u->sa_timedout;
	if (u->sa_timedout)
		laio_trace(ls, "upcall UNBLOCKED: timeout, nothing finished");
	*value = 1;
	return &ls->poll_ctx;
}

/* Never returns: not instrumented by ThreadSanitizer, whose shadow call stack would keep its
 * entry after every upcall (sa_switch_to() says more); upcall_work() is checked. */
__attribute__((no_sanitize("thread")))
void laio_upcall(struct sa_mailbox *mb, struct sa_upcall *u)
{
	long value;
	const struct sa_context *ctx = upcall_work(state_of(mb), u, &value);
	sa_switch_to(mb, NULL, ctx, value);
}
