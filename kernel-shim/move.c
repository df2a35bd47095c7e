/*
 * move.c - the moved-call direction: the probe and eager detectors know before the call
 * blocks, so the *call* goes to a spare activation and the user context stays where it is,
 * identity untouched. The runner then upcalls SA_BLOCKED itself, as the kernel would have.
 */
#include <sys/syscall.h>
#include <errno.h>
#include "ks.h"

struct move {
	struct ks_vp *vp;
	struct sa_thr_mailbox *m;
	struct ks_act *spare;
	int by;
};

static void run_moved_call(struct ks_act *act, void *arg);

/* Runs on the upcall stack, the caller's context saved in m->tm_context. */
static void move_and_upcall(void *arg)
{
	struct move *mv = arg;
	struct ks_vp *vp = mv->vp;
	struct sa_thr_mailbox *m = mv->m;
	mv->spare->ks_vp = vp;
	ks_act_give(mv->spare, run_moved_call, m);
	KS_COUNT(moved);
	ks_count_handoff(vp, mv->by);
	ks_upcall_blocked(vp, m, mv->by, true);
}

/* Give the call to a spare and upcall SA_BLOCKED; returns (raw) what the upcall handler resumes
 * the caller with. With no spare to be had, or upcalls off, the call runs here, synchronously. */
long ks_move_call(struct ks_vp *vp, long nr, const long args[6], int by, long prefix)
{
	struct sa_mailbox *mb = vp->ks_mbox;
	struct sa_thr_mailbox *m = mb->sa_curthread;
	struct ks_act *spare = NULL;

	m->tm_nr = nr;
	for (int i = 0; i < 6; i++)
		m->tm_args[i] = args[i];
	/* an activation that holds the call's files, taken before the caller goes on (hold.c) */
	if (!(__atomic_load_n(&mb->sa_flags, __ATOMIC_RELAXED) & SA_NOUPCALL))
		spare = ks_hold_take(vp, m);
	if (!spare) {
		KS_COUNT(sync_fallback);
		__atomic_fetch_add(&mb->sa_nsync, 1, __ATOMIC_RELAXED);
		long raw = ks_raw_syscall6(nr, args[0], args[1], args[2], args[3], args[4], args[5]);
		return ks_with_prefix(raw, prefix);
	}
	m->tm_prefix = prefix;
	m->tm_act = spare;
	__atomic_store_n(&m->tm_cstate, SA_CALL_QUEUED, __ATOMIC_RELEASE);
	/* the struct lives on this stack, which stays untouched until the context is resumed */
	struct move mv = { vp, m, spare, by };
	uintptr_t top = ((uintptr_t)mb->sa_stack + mb->sa_stacksize) & ~(uintptr_t)15;
	ks_stack_clean(mb->sa_stack, mb->sa_stacksize);
	return ks_save_and_run(&m->tm_context, move_and_upcall, &mv, (void *)top);
}

/* On the spare: run the call unless it was cancelled first, then complete it. */
static void run_moved_call(struct ks_act *act, void *arg)
{
	struct sa_thr_mailbox *m = arg;
	struct ks_vp *vp = act->ks_vp;
	int st = SA_CALL_QUEUED;
	long raw;
	act->ks_role = KS_BLOCKED;
	if (__atomic_compare_exchange_n(&m->tm_cstate, &st, SA_CALL_RUNNING, false,
					__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		raw = ks_cancellable_syscall(m);
	else
		raw = -ECANCELED;
	ks_hold_release(act, m); /* before the completion: m is the caller's again after it */
	ks_complete(vp, m, raw);
}
