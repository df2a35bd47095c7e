/*
 * vp.c - virtual processors: completion of blocked calls, upcall delivery, release, wakeup.
 *
 * The completed list (sa_completed) is a liburcu wait-free concurrent queue: any number of
 * blocked activations enqueue (an xchg: a full barrier), only the VP's runner dequeues. Release
 * and completion follow docs/protocol.md, R1-R6 and T7-T8.
 */
#include <stddef.h>
#include <errno.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <urcu/wfcqueue.h>
#include "ks.h"
#include "ks-offsets.h"

_Static_assert(offsetof(struct sa_context, rsp) == CTX_RSP, "ctx layout");
_Static_assert(offsetof(struct sa_context, rip) == CTX_RIP, "ctx layout");
_Static_assert(offsetof(struct sa_context, mxcsr) == CTX_MXCSR, "ctx layout");
_Static_assert(offsetof(struct sa_context, fpucw) == CTX_FPUCW, "ctx layout");
_Static_assert(offsetof(struct sa_thr_mailbox, tm_sys) == TM_SYS, "mailbox layout");
_Static_assert(offsetof(struct sa_thr_mailbox, tm_claim) == TM_CLAIM, "mailbox layout");
_Static_assert(offsetof(struct sa_thr_mailbox, tm_verdict) == TM_VERDICT, "mailbox layout");
_Static_assert(offsetof(struct sa_thr_mailbox, tm_swapfs) == TM_SWAPFS, "mailbox layout");
_Static_assert(offsetof(struct sa_thr_mailbox, tm_cstate) == TM_CSTATE, "mailbox layout");
_Static_assert(offsetof(struct sa_thr_mailbox, tm_nr) == TM_NR, "mailbox layout");
_Static_assert(offsetof(struct sa_thr_mailbox, tm_args) == TM_ARGS, "mailbox layout");
_Static_assert(offsetof(struct sa_mailbox, sa_curthread) == SA_CURTHREAD, "mailbox layout");
_Static_assert(offsetof(struct sa_mailbox, sa_vp) == SA_VP, "mailbox layout");
_Static_assert(offsetof(struct ks_vp, ks_kstack_top) == VP_KSTACK, "vp layout");
_Static_assert(offsetof(struct ks_vp, ks_runner) == VP_RUNNER, "vp layout");
_Static_assert(offsetof(struct ks_vp, ks_sb_cpu1) == VP_SB_CPU1, "vp layout");
_Static_assert(offsetof(struct ks_act, ks_rseq) + offsetof(struct rseq, cpu_id) == ACT_RSEQ_CPU,
	       "act layout");
_Static_assert(SA_CALL_CANCELLING == SA_CALL_CANCELLING_V, "cstate");
_Static_assert(SA_CALL_CANCELLED == SA_CALL_CANCELLED_V, "cstate");

struct ks_vp *ks_all_vps;
pthread_mutex_t ks_vps_lock = PTHREAD_MUTEX_INITIALIZER;

void ks_vp_register(struct ks_vp *vp)
{
	pthread_mutex_lock(&ks_vps_lock);
	vp->ks_all_next = ks_all_vps;
	ks_all_vps = vp;
	pthread_mutex_unlock(&ks_vps_lock);
}

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

/* T6-T8: record the result, put m on the VP's completed list, wake the VP if it sleeps. */
void ks_complete(struct ks_vp *vp, struct sa_thr_mailbox *m, long raw)
{
	struct sa_mailbox *mb = vp->ks_mbox;
	__atomic_fetch_add(&vp->ks_refs, 1, __ATOMIC_ACQUIRE);
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
		ks_raw_syscall6(1 /* write */, mb->sa_notify_fd, (long)&one, sizeof one, 0, 0, 0);
	}
	/* T8 */
	uint32_t parked = 1;
	if (__atomic_load_n(&vp->ks_parked, __ATOMIC_SEQ_CST) == 1 &&
	    __atomic_compare_exchange_n(&vp->ks_parked, &parked, 0, false, __ATOMIC_SEQ_CST,
					__ATOMIC_SEQ_CST))
		ks_futex_wake(&vp->ks_parked, 1);
	__atomic_fetch_sub(&vp->ks_refs, 1, __ATOMIC_RELEASE); /* last touch of vp */
}

/* activation/trace.h. The activation's own words are read here, in the shim, which
 * ThreadSanitizer builds leave uninstrumented (see the Makefile). */
int sa_runner_tid(struct sa_mailbox *mb)
{
	struct ks_vp *vp = mb ? mb->sa_vp : NULL;
	struct ks_act *runner = vp ? __atomic_load_n(&vp->ks_runner, __ATOMIC_RELAXED) : NULL;
	return runner ? runner->ks_tid : 0;
}

int sa_has_completed(struct sa_mailbox *mb)
{
	return !cds_wfcq_empty(&mb->sa_completed_head, &mb->sa_completed_tail);
}

struct sa_thr_mailbox *sa_take_completed(struct sa_mailbox *mb)
{
	struct cds_wfcq_head h;
	struct cds_wfcq_tail t;
	struct cds_wfcq_node *node, *next;
	struct sa_thr_mailbox *first = NULL, **link = &first;

	if (!sa_has_completed(mb))
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
	return sa_has_completed(vp->ks_mbox) || __atomic_load_n(&vp->ks_kicked, __ATOMIC_SEQ_CST);
}

static int valid_timespec(const struct timespec *ts)
{
	return ts->tv_sec >= 0 && ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000L;
}

/* R1-R6 of docs/protocol.md. */
int sa_release(struct sa_mailbox *mb, const struct timespec *timeout)
{
	struct ks_vp *vp = mb->sa_vp;
	struct timespec deadline, *dl = NULL;
	int timedout = 0;

	if (timeout && !valid_timespec(timeout)) {
		errno = EINVAL;
		return -1;
	}
	if (timeout && timeout->tv_sec > (1L << 30))
		timeout = NULL; /* over 34 years: the deadline would overflow; it means "forever" */
	if (timeout) {
		uint64_t t = ks_now_ns() + (uint64_t)timeout->tv_sec * 1000000000u +
			     (uint64_t)timeout->tv_nsec;
		deadline.tv_sec = (time_t)(t / 1000000000u);
		deadline.tv_nsec = (long)(t % 1000000000u);
		dl = &deadline;
	}
	ks_upcall_park(vp->ks_runner, true);
	ks_umask_refresh(); /* catch up with a mask changed out of sight */
	ks_pool_prefill(1); /* a spare ready for the next claim: no thread set-up on its path */
	/* R1: a completion is often a few microseconds away; a futex sleep and a cross-CPU
	   wakeup would cost ~40 us */
	uint64_t spin_until = vp->ks_runner->ks_spin ? ks_now_ns() + KS_SPIN_NS : 0;
	while (!ready_to_return(vp)) {
		uint64_t now = ks_now_ns();
		if (now >= spin_until)
			break;
		if (dl && now >= (uint64_t)deadline.tv_sec * 1000000000u + (uint64_t)deadline.tv_nsec) {
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
	ks_upcall_park(vp->ks_runner, false);
	/* R6 */
	__atomic_store_n(&vp->ks_kicked, 0, __ATOMIC_RELAXED);
	vp->ks_ev = (struct sa_upcall){ .sa_event = SA_UNBLOCKED, .sa_done = sa_take_completed(mb) };
	vp->ks_ev.sa_timedout = timedout && !vp->ks_ev.sa_done;
	ks_deliver(vp);
}

void sa_wakeup(struct sa_mailbox *mb)
{
	if (!mb || !mb->sa_vp)
		return; /* kse_wakeup(NULL), "any KSE", has no meaning for per-thread VPs */
	struct ks_vp *vp = mb->sa_vp;
	uint32_t one = 1;
	__atomic_store_n(&vp->ks_kicked, 1, __ATOMIC_SEQ_CST);
	if (__atomic_compare_exchange_n(&vp->ks_parked, &one, 0, false, __ATOMIC_SEQ_CST,
					__ATOMIC_SEQ_CST))
		ks_futex_wake(&vp->ks_parked, 1);
}
