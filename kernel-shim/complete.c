/*
 * complete.c - a blocked call's completion (T7-T8 of docs/protocol.md) and the VP's completed
 * list.
 *
 * The completed list (sa_completed) is a liburcu wait-free concurrent queue: any number of
 * blocked activations enqueue (an xchg: a full barrier), only the VP's runner dequeues.
 */
#include <sys/syscall.h>
#include <urcu/wfcqueue.h>
#include "ks.h"

/* The call of `m` is over. Settle a concurrent sa_interrupt() first: once the canceller has
 * sent its signal (CANCELLING -> CANCELLED) this activation may go on to other work. */
static void settle_cancel(struct sa_thr_mailbox *m)
{
	int st = SA_CALL_RUNNING;
	if (__atomic_compare_exchange_n(&m->tm_cstate, &st, SA_CALL_DONE, false, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE))
		return;
	while (__atomic_load_n(&m->tm_cstate, __ATOMIC_ACQUIRE) == SA_CALL_CANCELLING)
		ks_spin_pause();
	/* The canceller's signal was sent to this thread before CANCELLED was stored, but a thread
	   spinning in user mode takes it only at its next kernel entry: take it now, outside every
	   cancel window, so it cannot interrupt this activation's next call. */
	ks_raw_syscall6(SYS_getppid, 0, 0, 0, 0, 0, 0);
	__atomic_store_n(&m->tm_cstate, SA_CALL_DONE, __ATOMIC_RELEASE);
}

/* The result of a call that continues `prefix` bytes already read: read() reports what it read
 * before an error, and an error only when it read nothing. */
long ks_with_prefix(long raw, long prefix)
{
	if (prefix <= 0)
		return raw;
	return (unsigned long)raw >= -4095UL ? prefix : raw + prefix;
}

/* T6-T8: record the result, put m on the VP's completed list, wake the VP if it sleeps. */
void ks_complete(struct ks_vp *vp, struct sa_thr_mailbox *m, long raw)
{
	struct sa_mailbox *mb = vp->ks_mbox;
	ks_vp_ref(vp);
	settle_cancel(m);
	raw = ks_with_prefix(raw, m->tm_prefix);
	m->tm_prefix = 0;
	if ((unsigned long)raw >= -4095UL) {
		m->tm_retval = -1;
		m->tm_errno = (int)-raw;
	} else {
		m->tm_retval = raw;
		m->tm_errno = 0;
	}
	if (__atomic_load_n(&mb->sa_flags, __ATOMIC_RELAXED) & SA_TIMESTAMP)
		m->tm_done_ns = ks_now_ns();
	cds_wfcq_node_init(&m->tm_next);
	/* T7: the enqueue's xchg is a full barrier, paired with the runner's xchg in R2 */
	cds_wfcq_enqueue(&mb->sa_completed_head, &mb->sa_completed_tail, &m->tm_next);
	if (__atomic_load_n(&mb->sa_flags, __ATOMIC_ACQUIRE) & SA_NOTIFY) {
		uint64_t one = 1;
		ks_raw_syscall6(SYS_write, mb->sa_notify_fd, (long)&one, sizeof one, 0, 0, 0);
	}
	/* T8 */
	uint32_t parked = 1;
	if (__atomic_load_n(&vp->ks_parked, __ATOMIC_SEQ_CST) == 1 &&
	    __atomic_compare_exchange_n(&vp->ks_parked, &parked, 0, false, __ATOMIC_SEQ_CST,
					__ATOMIC_SEQ_CST))
		ks_futex_wake(&vp->ks_parked, 1);
	ks_vp_unref(vp); /* last touch of vp */
}

int ks_has_completed(struct sa_mailbox *mb)
{
	return !cds_wfcq_empty(&mb->sa_completed_head, &mb->sa_completed_tail);
}

/* Every finished call on mb's list, oldest first, linked by tm_link. The VP's runner only. */
struct sa_thr_mailbox *ks_take_completed(struct sa_mailbox *mb)
{
	struct cds_wfcq_head h;
	struct cds_wfcq_tail t;
	struct cds_wfcq_node *node, *next;
	struct sa_thr_mailbox *first = NULL, **link = &first;

	if (!ks_has_completed(mb))
		return NULL;
	cds_wfcq_init(&h, &t);
	/* single consumer: the VP's runner; the blocking variant waits out a half-done enqueue */
	__cds_wfcq_splice_blocking(&h, &t, &mb->sa_completed_head, &mb->sa_completed_tail);
	__cds_wfcq_for_each_blocking_safe(&h, &t, node, next) {
		struct sa_thr_mailbox *m = caa_container_of(node, struct sa_thr_mailbox, tm_next);
		m->tm_link = NULL;
		*link = m;
		link = &m->tm_link;
	}
	return first;
}
