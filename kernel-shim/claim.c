/*
 * claim.c - taking a virtual processor from a runner that blocked: C0-C5 of docs/protocol.md.
 *
 * The runner's side is in trap.S and uses no locked instruction: it stores tm_sys (T3) and loads
 * tm_claim (T4). The claimer is the rare side and pays for the ordering at C2: it confirms that
 * the runner sleeps in its call (confirm.c), which both rules out a false alarm and orders C1
 * before the runner's T4. Only where that cannot be told (no /proc) does it fall back to
 * membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED): every running thread of the process executes a
 * full barrier, so either the runner's T3 store is visible to our C3 load, or its T4 load sees
 * our C1 store (the asymmetric Dekker pattern of liburcu's "memb" flavour).
 */
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <signal.h>
#include "ks.h"

static int membarrier_ok;

void ks_claim_init(void)
{
	membarrier_ok = ks_raw_syscall6(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0,
					0, 0, 0, 0) == 0;
}

/* C2 where the runner's state cannot be read. Without membarrier (old kernels) no signal-free
 * fallback exists; the claim is then refused and the call completes synchronously. */
static bool full_barrier_everywhere(void)
{
	KS_COUNT(barriers);
	if (!membarrier_ok)
		return false;
	return ks_raw_syscall6(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0, 0, 0, 0) == 0;
}

/* ks_vp.ks_nsync_seen of a call counted in sa_nsync and then claimed after all. */
#define NSYNC_RETRACTED (1ull << 63)

/* One call of one flow, as one word: tm_sys alone repeats across mailboxes (a scheduler may
 * give each call a mailbox of its own, whose tm_sys starts again at 1). A collision of two
 * calls in a row would only make the second go uncounted. */
static uint64_t call_key(const struct sa_thr_mailbox *m, uint64_t s)
{
	return ((uint64_t)(uintptr_t)m * 0x9e3779b97f4a7c15ull ^ s) & ~NSYNC_RETRACTED;
}

/* Call `s` of `m` blocked and runs synchronously (no activation to claim it, or the
 * scheduler's limit): counted in sa_nsync once however many detectors or looks find it. A later
 * look may still find a spare and claim it: the claim takes the count back (retract_sync) before
 * the flow can see it, so sa_nsync counts only calls that really ran synchronously. */
void ks_count_sync(struct ks_vp *vp, struct sa_thr_mailbox *m, uint64_t s)
{
	uint64_t key = call_key(m, s);
	uint64_t old = __atomic_load_n(&vp->ks_nsync_seen, __ATOMIC_RELAXED);
	do
		if (old == key || old == (key | NSYNC_RETRACTED))
			return;
	while (!__atomic_compare_exchange_n(&vp->ks_nsync_seen, &old, key, false, __ATOMIC_RELAXED,
					    __ATOMIC_RELAXED));
	__atomic_fetch_add(&vp->ks_mbox->sa_nsync, 1, __ATOMIC_RELAXED);
}

/* Call `s` of `m` was counted as synchronous and has been claimed: it goes to the background. */
static void retract_sync(struct ks_vp *vp, struct sa_thr_mailbox *m, uint64_t s)
{
	uint64_t was = call_key(m, s);
	if (__atomic_compare_exchange_n(&vp->ks_nsync_seen, &was, was | NSYNC_RETRACTED, false,
					__ATOMIC_RELAXED, __ATOMIC_RELAXED))
		__atomic_fetch_sub(&vp->ks_mbox->sa_nsync, 1, __ATOMIC_RELAXED);
}

/* A call went to the background, found by detector `by`: process-wide and per VP. */
void ks_count_handoff(struct ks_vp *vp, int by)
{
	KS_COUNT(handoffs[by]);
	__atomic_fetch_add(&vp->ks_mbox->sa_handoffs[by], 1, __ATOMIC_RELAXED);
}

/* The decision on call s, and the end of this claim (the verdict before ks_claiming: the next
 * claimer of the same call sees it at its cheap look). */
static void decide(struct ks_vp *vp, struct sa_thr_mailbox *m, uint64_t s, bool won)
{
	__atomic_store_n(&m->tm_verdict, (s << 1) | won, __ATOMIC_RELEASE);
	__atomic_store_n(&vp->ks_claiming, 0, __ATOMIC_RELEASE);
}

/* C4: the VP is ours. The user's signal mask as recorded in its TLS (sigmask.c): the blocked
 * runner is in the kernel or waits for the verdict, so it cannot change it now. */
static uint64_t take_over(struct ks_act *self, struct ks_vp *vp, struct sa_thr_mailbox *m,
			  uint64_t s, int by)
{
	struct ks_act *blocked = vp->ks_runner;
	uint64_t umask = ks_umask_of(vp->ks_fs) | KS_SIGBIT(KS_SIG_UPCALL);
	blocked->ks_mask_applied = umask;
	/* wear the user's TLS before the blocked runner may take ours */
	m->tm_swapfs = self->ks_fs;
	m->tm_act = blocked;
	__atomic_store_n(&m->tm_cstate, SA_CALL_RUNNING, __ATOMIC_RELAXED);
	blocked->ks_role = KS_BLOCKED;
	blocked->ks_vp = vp;
	blocked->ks_claim_by = by;
	vp->ks_blocked_cpu = ks_cpu_of(blocked);
	vp->ks_runner = self;
	vp->ks_kstack_top = self->ks_kstack_top;
	self->ks_role = KS_RUNNER;
	self->ks_vp = vp;
	self->ks_fs = vp->ks_fs;
	ks_wrfs(vp->ks_fs);
	/* the detector moves to the new runner before the verdict: after it, the blocked
	   activation may finish, become a spare and run another VP */
	if (vp->ks_det && vp->ks_det->runner_changed)
		vp->ks_det->runner_changed(vp, blocked);
	decide(vp, m, s, true);
	KS_COUNT(claims_won);
	retract_sync(vp, m, s);
	ks_count_handoff(vp, by);
	return umask;
}

/* Claim call `s` of `m` on `vp` for detector `by`. Returns false if the VP stays with its
 * runner; if the claim is won it does not return: the caller becomes the VP's runner and
 * delivers SA_BLOCKED. */
bool ks_claim(struct ks_act *self, struct ks_vp *vp, struct sa_thr_mailbox *m, uint64_t s, int by)
{
	struct sa_mailbox *mb = vp->ks_mbox;
	uint32_t zero = 0;

	if (__atomic_load_n(&mb->sa_flags, __ATOMIC_RELAXED) & SA_NOUPCALL) {
		/* the scheduler asked for synchronous completion (its limit); a claimer that comes
		   after the call ended counts nothing */
		if (__atomic_load_n(&mb->sa_curthread, __ATOMIC_ACQUIRE) == m &&
		    __atomic_load_n(&m->tm_sys, __ATOMIC_ACQUIRE) == s)
			ks_count_sync(vp, m, s);
		return false;
	}
	if (!__atomic_compare_exchange_n(&vp->ks_claiming, &zero, 1, false, __ATOMIC_ACQUIRE,
					 __ATOMIC_RELAXED))
		return false;                                                     /* C0 */
	/* cheap look first: nothing to do for a call that is already over or handed off (a claim
	   refused because the runner was running does not stop a later one: it may block yet) */
	if (__atomic_load_n(&mb->sa_curthread, __ATOMIC_ACQUIRE) != m ||
	    __atomic_load_n(&m->tm_sys, __ATOMIC_ACQUIRE) != s ||
	    __atomic_load_n(&m->tm_verdict, __ATOMIC_ACQUIRE) == ((s << 1) | 1)) {
		__atomic_store_n(&vp->ks_claiming, 0, __ATOMIC_RELEASE);
		return false;
	}
	/* C1: no verdict yet (an earlier claim's refusal must not answer this one: a runner that
	   meets tm_claim == s waits for a verdict on s), then the claim itself */
	__atomic_store_n(&m->tm_verdict, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&m->tm_claim, s, __ATOMIC_RELAXED);                   /* C1 */
	int asleep = ks_runner_asleep(vp->ks_runner);                             /* C2 */
	if (asleep == 0) {
		/* running or preempted: a false alarm, dropped (the runner's T4 may see C1 and
		   wait for this verdict: it gets "not won") */
		decide(vp, m, s, false);
		KS_COUNT(confirm_running);
		__atomic_fetch_add(&mb->sa_spurious[by], 1, __ATOMIC_RELAXED);
		return false;
	}
	if ((asleep != 1 && !full_barrier_everywhere()) ||
	    __atomic_load_n(&m->tm_sys, __ATOMIC_ACQUIRE) != s) {                /* C3 */
		decide(vp, m, s, false);
		KS_COUNT(claims_lost);
		return false;
	}
	uint64_t umask = take_over(self, vp, m, s, by);                           /* C4 */
	KS_KSTACK_CLEAN(self); /* its frames here are abandoned */
	/* the claimer's reference (a dispatched claim, or a standby's) ends: it owns the VP now,
	   and the VP cannot be destroyed but by its owner */
	ks_vp_unref(vp);
	/* C5: the rest of the thread's identity, then the upcall */
	ks_raw_syscall6(SYS_rt_sigprocmask, SIG_SETMASK, (long)&umask, 0, sizeof umask, 0, 0);
	ks_adopt_exit_tid(vp->ks_fs); /* a thread may exit without sa_destroy(): pthread_join */
	/* once in its life, for the claims of this VP's next calls: here, where the program's
	   thread cannot run (it is this one now), not when the spawner made it, so that the
	   number it takes for a moment cannot race with that thread's own open() */
	ks_sysfd_open(self);
	ks_upcall_blocked(vp, m, by, false);
}

/* The task of a spare sent to claim (ks_send_claimer). */
static void claim_task(struct ks_act *self, void *arg)
{
	struct ks_vp *vp = arg;
	self->ks_vp = vp;
	ks_claim(self, vp, self->ks_claim_m, self->ks_claim_s, self->ks_claim_by);
	ks_vp_unref(vp); /* only if the runner kept the VP: a won claim does not return */
}

/* A detector that does not claim for itself sends a spare to claim call `s` of `m` on `vp`; the
 * spare holds a reference to the VP until its claim ends; it is one that slept on CPU `near`
 * if one did (-1: any). false: no spare now (the spawner is making more: look again later), or
 * never (counted as a synchronous call). */
bool ks_send_claimer(struct ks_vp *vp, struct sa_thr_mailbox *m, uint64_t s, int by, int32_t near)
{
	struct ks_act *spare = ks_act_take_near(near);
	if (!spare) {
		/* counted only if the call is still in progress and was not handed off meanwhile
		   (a look that read it before a claim won must not count it) */
		if (ks_act_exhausted() &&
		    __atomic_load_n(&vp->ks_mbox->sa_curthread, __ATOMIC_ACQUIRE) == m &&
		    __atomic_load_n(&m->tm_sys, __ATOMIC_ACQUIRE) == s &&
		    __atomic_load_n(&m->tm_verdict, __ATOMIC_ACQUIRE) != ((s << 1) | 1))
			ks_count_sync(vp, m, s);
		return false;
	}
	ks_give_claim(spare, vp, m, s, by, claim_task);
	return true;
}

/* Send `act` to claim call s of m on vp for detector `by` by running `task` (claim_task here, a
 * VP group's own variant there); it holds a reference to the VP until its claim ends. */
void ks_give_claim(struct ks_act *act, struct ks_vp *vp, struct sa_thr_mailbox *m, uint64_t s,
		   int by, ks_task_fn *task)
{
	ks_vp_ref(vp);
	act->ks_claim_m = m;
	act->ks_claim_s = s;
	act->ks_claim_by = by;
	ks_act_give(act, task, vp);
}

/* A detector's look before it proposes a claim on evidence as weak as time alone: does the
 * runner sleep now? Read under ks_claiming (the descriptor is only read so). 1: it sleeps, or a
 * claim is under way (that claim confirms); 0: it runs; -1: no way to tell (no /proc file it
 * may read, as in a process that gave up root), where the claim cannot confirm either. */
int ks_runner_sleeps(struct ks_vp *vp)
{
	uint32_t zero = 0;
	if (!__atomic_compare_exchange_n(&vp->ks_claiming, &zero, 1, false, __ATOMIC_ACQUIRE,
					 __ATOMIC_RELAXED))
		return 1;
	int asleep = ks_runner_asleep(vp->ks_runner);
	__atomic_store_n(&vp->ks_claiming, 0, __ATOMIC_RELEASE);
	return asleep == KS_ASLEEP_UNORDERED ? 1 : asleep;
}

/*
 * A detector proposes a claim of call s of m once, and again only if the claim was refused
 * (the runner was running: preempted, or woken on another CPU than rseq said) and the call is
 * still in progress, after a delay that doubles with each refusal (20 us, 40 us, ... 20 ms): a
 * long call that runs in the kernel costs a few looks, not a claimer per look. A claim not
 * decided yet (its verdict is not about s) is not proposed again.
 */
#define PROPOSE_BACKOFF_NS 20000u

bool ks_propose_due(const struct ks_seen *k, struct sa_thr_mailbox *m, uint64_t s, uint64_t now)
{
	uint64_t v = __atomic_load_n(&m->tm_verdict, __ATOMIC_ACQUIRE);
	if (v == ((s << 1) | 1))
		return false; /* in the background already (another detector's claim won) */
	if (k->m != m || k->s != s)
		return true;
	if (v != s << 1)
		return false; /* under way */
	return now >= k->next_ns;
}

void ks_proposed(struct ks_seen *k, struct sa_thr_mailbox *m, uint64_t s, uint64_t now)
{
	if (k->m != m || k->s != s)
		*k = (struct ks_seen){ m, s, 0, 0 };
	k->tries++;
	k->next_ns = now + ((uint64_t)PROPOSE_BACKOFF_NS << (k->tries < 10 ? k->tries : 10));
}
