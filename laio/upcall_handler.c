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

static void blocked(struct laio_state *ls, struct laio_handle *h)
{
	ls->background_handle = h;              /* laio_desc_bg = current_thread */
	h->state = H_BACKGROUND;
	ls->current_handle = laio_handle_alloc(ls); /* current_thread = a fresh mailbox */
	ls->st.blocked++;
	if (++ls->st.in_flight > ls->st.peak_in_flight)
		ls->st.peak_in_flight = ls->st.in_flight;
	laio_update_limit(ls);
	laio_trace(ls, "upcall BLOCKED: system call %ld is background handle %p; flow continues with %p",
		   h->tm.tm_nr, (void *)h, (void *)ls->current_handle);
}

/* Finished threads join the completed list, oldest first; they are never resumed. */
void laio_completed_append(struct laio_state *ls, struct sa_thr_mailbox *done)
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
		laio_trace(ls, "upcall UNBLOCKED: handle %p finished: %ld (errno %d)", (void *)h,
			   h->tm.tm_retval, h->tm.tm_errno);
	}
}

void laio_upcall(struct sa_mailbox *mb, struct sa_upcall *u)
{
	struct laio_state *ls = state_of(mb);
	ls->st.upcalls++;
	if (u->sa_event == SA_BLOCKED) {
		struct laio_handle *h = (struct laio_handle *)u->sa_blocked;
		blocked(ls, h);
		/* the blocked handle's saved context stays intact: its activation only writes the
		   result fields. Upcalls stay off (sa_curthread NULL) until the next call. */
		sa_switch_to(mb, NULL, &h->tm.tm_context, -EINPROGRESS);
	}
	laio_completed_append(ls, u->sa_done);
	ls->poll_timedout = u->sa_timedout;
	if (u->sa_timedout)
		laio_trace(ls, "upcall UNBLOCKED: timeout, nothing finished");
	sa_switch_to(mb, NULL, &ls->poll_ctx, 1);
}
