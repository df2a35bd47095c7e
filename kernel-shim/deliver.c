/*
 * deliver.c - upcalls: running the VP's upcall function on its upcall stack, for a blocked call
 * (SA_BLOCKED) or after a release (SA_UNBLOCKED), and the release itself (R1-R6 of
 * docs/protocol.md) with its wakeup.
 */
#include <errno.h>
#include "ks.h"

static void upcall_trampoline(void *arg)
{
	struct ks_vp *vp = arg;
	struct sa_mailbox *mb = vp->ks_mbox;
	mb->sa_func(mb, &vp->ks_ev);
	__builtin_trap(); /* an upcall handler must not return */
}

/* Run the VP's upcall for vp->ks_ev on the upcall stack; upcalls are off while it runs. */
void ks_deliver(struct ks_vp *vp)
{
	struct sa_mailbox *mb = vp->ks_mbox;
	uintptr_t top = ((uintptr_t)mb->sa_stack + mb->sa_stacksize) & ~(uintptr_t)15;
	__atomic_store_n(&mb->sa_curthread, NULL, __ATOMIC_RELAXED);
	ks_stack_clean(mb->sa_stack, mb->sa_stacksize);
	ks_run_on((void *)top, upcall_trampoline, vp);
}

/* by: the detector that caught the block; moved: the call went to another activation (move.c),
 * else a spare took the VP from the blocked runner (claim.c) */
void ks_upcall_blocked(struct ks_vp *vp, struct sa_thr_mailbox *m, int by, bool moved)
{
	struct ks_act *executor = m->tm_act;
	vp->ks_ev = (struct sa_upcall){ .sa_event = SA_BLOCKED, .sa_blocked = m,
					.sa_detector = by, .sa_moved = moved,
					.sa_call_tid = executor ? executor->ks_tid : 0 };
	ks_deliver(vp);
}

static int ready_to_return(struct ks_vp *vp)
{
	return ks_has_completed(vp->ks_mbox) || __atomic_load_n(&vp->ks_kicked, __ATOMIC_SEQ_CST);
}

static void park(struct ks_vp *vp, bool parking)
{
	const struct ks_detector *d = vp->ks_det;
	if (d && d->park)
		d->park(vp, parking);
}

/* R1-R6. -1 with EINVAL for a bad timespec; otherwise it upcalls SA_UNBLOCKED. */
int ks_release(struct ks_vp *vp, const struct timespec *timeout)
{
	struct timespec deadline, *dl = NULL;
	uint64_t dl_ns = 0;
	int timedout = 0;

	if (timeout && (timeout->tv_sec < 0 || timeout->tv_nsec < 0 ||
			timeout->tv_nsec >= 1000000000L))
		return -EINVAL;
	if (timeout && timeout->tv_sec > (1L << 30))
		timeout = NULL; /* over 34 years: the deadline would overflow; it means "forever" */
	if (timeout) {
		dl_ns = ks_now_ns() + (uint64_t)timeout->tv_sec * 1000000000u +
			(uint64_t)timeout->tv_nsec;
		deadline.tv_sec = (time_t)(dl_ns / 1000000000u);
		deadline.tv_nsec = (long)(dl_ns % 1000000000u);
		dl = &deadline;
	}
	park(vp, true);
	ks_umask_refresh();     /* catch up with a mask changed out of sight */
	/* R1: a completion is often a few microseconds away; a futex sleep and a cross-CPU
	   wakeup would cost ~40 us. Not on the CPU where the last blocked activation waits to
	   finish its call: the spin would hold that completion off (ks_spin_pays) */
	uint64_t spin_until = ks_spin_pays(vp->ks_runner, vp->ks_blocked_cpu)
			      ? ks_now_ns() + KS_SPIN_NS : 0;
	while (!ready_to_return(vp)) {
		uint64_t now = ks_now_ns();
		if (now >= spin_until)
			break;
		if (dl && now >= dl_ns) {
			timedout = 1;
			break;
		}
		ks_spin_pause();
	}
	while (!timedout && !ready_to_return(vp)) {
		__atomic_exchange_n(&vp->ks_parked, 1, __ATOMIC_SEQ_CST);        /* R2 */
		if (!ready_to_return(vp)) {                                       /* R3 */
			int r = ks_futex_wait(&vp->ks_parked, 1, dl);              /* R4 */
			if (r == -ETIMEDOUT)
				timedout = 1;
		}
		uint32_t one = 1;                                                 /* R5 */
		__atomic_compare_exchange_n(&vp->ks_parked, &one, 0, false, __ATOMIC_SEQ_CST,
					    __ATOMIC_SEQ_CST);
	}
	park(vp, false);
	/* R6 */
	__atomic_store_n(&vp->ks_kicked, 0, __ATOMIC_RELAXED);
	vp->ks_ev = (struct sa_upcall){ .sa_event = SA_UNBLOCKED,
					.sa_done = ks_take_completed(vp->ks_mbox) };
	vp->ks_ev.sa_timedout = timedout && !vp->ks_ev.sa_done;
	ks_deliver(vp);
}

void ks_wakeup(struct ks_vp *vp)
{
	uint32_t one = 1;
	__atomic_store_n(&vp->ks_kicked, 1, __ATOMIC_SEQ_CST);
	if (__atomic_compare_exchange_n(&vp->ks_parked, &one, 0, false, __ATOMIC_SEQ_CST,
					__ATOMIC_SEQ_CST))
		ks_futex_wake(&vp->ks_parked, 1);
}
