/*
 * claim.c - taking a virtual processor from a runner that blocked (C0-C5 of docs/protocol.md),
 * and what the blocked runner does once it comes back (T6-T9).
 *
 * The runner's side is in trap.S and uses no locked instruction: it stores tm_sys and loads
 * tm_claim. The claimer is the rare side and pays for the ordering with
 * membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED): after it, every running thread of the process has
 * executed a full barrier, so either the runner's T3 store is visible to our C3 load, or the
 * runner's T4 load sees our C1 store (the asymmetric Dekker pattern of liburcu's "memb" flavour).
 */
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <signal.h>
#include <ucontext.h>
#include <unistd.h>
#include <errno.h>
#include "ks.h"

static int membarrier_ok;

void ks_membarrier_init(void)
{
	membarrier_ok = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
}

/* C2. Without membarrier (old kernels) a signal-free fallback is not possible; the claim is
 * then refused and the call simply completes synchronously. */
static bool full_barrier_everywhere(void)
{
	if (!membarrier_ok)
		return false;
	return ks_raw_syscall6(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0, 0, 0, 0) == 0;
}

/* ks_vp.ks_nsync_seen of a call counted in sa_nsync and then claimed after all. */
#define NSYNC_RETRACTED (1ull << 63)

/* Call `s` blocked and runs synchronously (no activation to claim it, or the scheduler's limit):
 * counted in sa_nsync once however many detectors or looks find it. A later look may still find
 * a spare and claim it: the claim takes the count back (retract_sync) before the flow can see
 * it, so sa_nsync counts only calls that really ran synchronously. */
void ks_count_sync(struct ks_vp *vp, uint64_t s)
{
	uint64_t old = __atomic_load_n(&vp->ks_nsync_seen, __ATOMIC_RELAXED);
	do
		if (old == s || old == (s | NSYNC_RETRACTED))
			return;
	while (!__atomic_compare_exchange_n(&vp->ks_nsync_seen, &old, s, false, __ATOMIC_RELAXED,
					    __ATOMIC_RELAXED));
	__atomic_fetch_add(&vp->ks_mbox->sa_nsync, 1, __ATOMIC_RELAXED);
}

/* Call `s` was counted as synchronous and has been claimed: it goes to the background. */
static void retract_sync(struct ks_vp *vp, uint64_t s)
{
	uint64_t was = s;
	if (__atomic_compare_exchange_n(&vp->ks_nsync_seen, &was, s | NSYNC_RETRACTED, false,
					__ATOMIC_RELAXED, __ATOMIC_RELAXED))
		__atomic_fetch_sub(&vp->ks_mbox->sa_nsync, 1, __ATOMIC_RELAXED);
}

/* A call went to the background, found by detector `by`: process-wide and per VP. */
void ks_count_handoff(struct ks_vp *vp, int by)
{
	KS_COUNT(handoffs[by]);
	__atomic_fetch_add(&vp->ks_mbox->sa_handoffs[by], 1, __ATOMIC_RELAXED);
}

/* A detector that does not claim for itself (watchdog, idle) sends `spare` to claim call `s` of
 * `m` on `vp`; the spare holds a reference to the VP until its claim ends (act.c). */
void ks_send_claimer(struct ks_act *spare, struct ks_vp *vp, struct sa_thr_mailbox *m, uint64_t s,
		     int by)
{
	__atomic_fetch_add(&vp->ks_refs, 1, __ATOMIC_RELAXED);
	spare->ks_vp = vp;
	spare->ks_claim_s = s;
	spare->ks_claim_by = by;
	ks_act_give(spare, KS_TASK_CLAIM, m);
}

bool ks_claim(struct ks_act *self, struct ks_vp *vp, struct sa_thr_mailbox *m, uint64_t s, int by)
{
	struct sa_mailbox *mb = vp->ks_mbox;
	uint32_t zero = 0;

	if (__atomic_load_n(&mb->sa_flags, __ATOMIC_RELAXED) & SA_NOUPCALL) {
		/* the scheduler asked for synchronous completion (its limit); a claimer that comes
		   after the call ended counts nothing */
		if (__atomic_load_n(&mb->sa_curthread, __ATOMIC_ACQUIRE) == m &&
		    __atomic_load_n(&m->tm_sys, __ATOMIC_ACQUIRE) == s)
			ks_count_sync(vp, s);
		return false;
	}
	if (!__atomic_compare_exchange_n(&vp->ks_claiming, &zero, 1, false, __ATOMIC_ACQUIRE,
					 __ATOMIC_RELAXED))
		return false;                                                     /* C0 */
	/* cheap look first: no membarrier for a call that is already over */
	if (__atomic_load_n(&mb->sa_curthread, __ATOMIC_ACQUIRE) != m ||
	    __atomic_load_n(&m->tm_sys, __ATOMIC_ACQUIRE) != s ||
	    __atomic_load_n(&m->tm_verdict, __ATOMIC_ACQUIRE) >> 1 == s) {
		__atomic_store_n(&vp->ks_claiming, 0, __ATOMIC_RELEASE);
		return false;
	}
	__atomic_store_n(&m->tm_claim, s, __ATOMIC_RELAXED);                   /* C1 */
	if (!full_barrier_everywhere() ||                                        /* C2 */
	    __atomic_load_n(&m->tm_sys, __ATOMIC_ACQUIRE) != s) {                /* C3 */
		__atomic_store_n(&m->tm_verdict, s << 1, __ATOMIC_RELEASE);
		__atomic_store_n(&vp->ks_claiming, 0, __ATOMIC_RELEASE);
		KS_COUNT(claims_lost);
		return false;
	}
	/* C4: the VP is ours. The user's signal mask as recorded in its TLS (sigmask.c): the
	   blocked runner is in the kernel or waits for the verdict, so it cannot change it now. */
	struct ks_act *blocked = vp->ks_runner;
	uint64_t umask = ks_umask_of(vp->ks_fs) | KS_SIGBIT(KS_SIG_UPCALL);
	blocked->ks_mask_applied = umask;
	/* Its context-switch event: once it is a spare it may run another VP and arm
	   one again. A blocked activation keeps no descriptor. */
	ks_upcall_release(blocked);
	/* Wear the user's TLS before the blocked runner may take ours. */
	m->tm_swapfs = self->ks_fs;
	m->tm_act = blocked;
	__atomic_store_n(&m->tm_cstate, SA_CALL_RUNNING, __ATOMIC_RELAXED);
	blocked->ks_role = KS_BLOCKED;
	blocked->ks_vp = vp;
	vp->ks_runner = self;
	vp->ks_kstack_top = self->ks_kstack_top;
	self->ks_role = KS_RUNNER;
	self->ks_vp = vp;
	self->ks_fs = vp->ks_fs;
	ks_wrfs(vp->ks_fs);
	__atomic_store_n(&m->tm_verdict, (s << 1) | 1, __ATOMIC_RELEASE);
	__atomic_store_n(&vp->ks_claiming, 0, __ATOMIC_RELEASE);
	KS_COUNT(claims_won);
	retract_sync(vp, s);
	ks_count_handoff(vp, by);
	blocked->ks_claim_by = by; /* for its spurious test at T6 */
	KS_KSTACK_CLEAN(self); /* its frames here are abandoned */
	/* the claimer's reference (a dispatched claim, or the standby's) ends: it owns the VP now,
	   and the VP cannot be destroyed but by its owner */
	__atomic_fetch_sub(&vp->ks_refs, 1, __ATOMIC_RELEASE);
	self->ks_nvcsw = ks_nvcsw();
	/* C5: the rest of the thread's identity, then the upcall */
	ks_raw_syscall6(SYS_rt_sigprocmask, SIG_SETMASK, (long)&umask, 0, sizeof umask, 0, 0);
	ks_adopt_exit_tid(vp->ks_fs); /* a thread may exit without sa_destroy(): pthread_join */
	if (vp->ks_lazy == SA_DETECT_UPCALL && ks_upcall_arm(vp, self) < 0)
		ks_upcall_fallback(vp);
	ks_upcall_blocked(vp, m, by, false);
}

/* T6-T9, entered from trap.S wearing the TLS the claimer left (so C code is safe here). */
void ks_after_lost(struct ks_vp *vp, struct sa_thr_mailbox *m, long raw)
{
	struct ks_act *self = m->tm_act;
	sigset_t spare_mask;
	uint64_t mine = 0;
	self->ks_fs = m->tm_swapfs;
	/* the mask the flow really had (a temporary one of its call is undone by now) against
	   the one the claimer gave it */
	ks_raw_syscall6(SYS_rt_sigprocmask, SIG_BLOCK, 0, (long)&mine, sizeof mine, 0, 0);
	if ((mine ^ self->ks_mask_applied) & ~(KS_SIGBIT(KS_SIG_UPCALL) | KS_SIGBIT(KS_SIG_CANCEL)))
		KS_COUNT(mask_stale);
	/* A call that blocked slept in the kernel: a voluntary switch. None since this activation
	   became the runner means it was only preempted when the detector took the VP. */
	if (ks_nvcsw() == self->ks_nvcsw)
		__atomic_fetch_add(&vp->ks_mbox->sa_spurious[self->ks_claim_by], 1, __ATOMIC_RELAXED);
	ks_adopt_exit_tid(self->ks_fs);
	ks_carry_pending(vp);
	sigfillset(&spare_mask); /* it wore the user's mask; spares take only the cancel signal */
	sigdelset(&spare_mask, KS_SIG_CANCEL);
	pthread_sigmask(SIG_SETMASK, &spare_mask, NULL);
	ks_complete(vp, m, raw);
	ks_act_become_spare(self);
}

/* The cancel signal: if it caught an activation between "about to enter the kernel" and the
 * syscall instruction, the call must not start; make it return -EINTR instead. Touches no TLS. */
extern char ks_trap_window_start[], ks_trap_window_end[], ks_trap_eintr[];

static void cancel_handler(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	uintptr_t ip = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
	(void)sig;
	(void)si;
	if (ip >= (uintptr_t)ks_cancel_window_start && ip < (uintptr_t)ks_cancel_window_end)
		uc->uc_mcontext.gregs[REG_RIP] = (greg_t)(uintptr_t)ks_cancel_out;
	else if (ip >= (uintptr_t)ks_trap_window_start && ip < (uintptr_t)ks_trap_window_end &&
		 __atomic_load_n(&((struct sa_thr_mailbox *)uc->uc_mcontext.gregs[REG_R13])->tm_cstate,
				 __ATOMIC_ACQUIRE) >= SA_CALL_CANCELLING)
		/* in the trap window r13 is the call's mailbox: only a cancelled call is stopped */
		uc->uc_mcontext.gregs[REG_RIP] = (greg_t)(uintptr_t)ks_trap_eintr;
}

static void upcall_stray(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
}

void ks_signals_init(void)
{
	struct sigaction sa = { 0 };
	sa.sa_sigaction = cancel_handler;
	sa.sa_flags = SA_SIGINFO; /* no SA_RESTART: an interrupted call reports EINTR */
	sigfillset(&sa.sa_mask);
	sigaction(KS_SIG_CANCEL, &sa, NULL);
	/* the upcall detector's notices are taken with sigwaitinfo(); one that strays to a thread
	   that does not block it must not kill the process */
	sa.sa_sigaction = upcall_stray;
	sigaction(KS_SIG_UPCALL, &sa, NULL);
}

/* sa_interrupt(): see sa.h. */
int sa_interrupt(struct sa_thr_mailbox *m)
{
	for (;;) {
		int st = __atomic_load_n(&m->tm_cstate, __ATOMIC_ACQUIRE);
		switch (st) {
		case SA_CALL_QUEUED:
			if (__atomic_compare_exchange_n(&m->tm_cstate, &st, SA_CALL_CANCELLED, false,
							__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
				return 0;
			break;
		case SA_CALL_RUNNING:
			if (__atomic_compare_exchange_n(&m->tm_cstate, &st, SA_CALL_CANCELLING, false,
							__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
				struct ks_act *act = m->tm_act;
				/* the activation cannot finish and move on before CANCELLED */
				syscall(SYS_tgkill, getpid(), act->ks_tid, KS_SIG_CANCEL);
				__atomic_store_n(&m->tm_cstate, SA_CALL_CANCELLED, __ATOMIC_RELEASE);
				return 0;
			}
			break;
		case SA_CALL_CANCELLING:
		case SA_CALL_CANCELLED:
			return 0;
		default:
			errno = ENOENT;
			return -1;
		}
	}
}
