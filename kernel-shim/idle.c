/*
 * idle.c - the idle detector: the kernel's own scheduler tells us that a runner blocked.
 *
 * Each VP has a standby activation with policy SCHED_IDLE on the CPU its runner last ran user
 * code on (the runner's rseq cpu_id). The scheduler runs an idle-class thread only when nothing
 * else on its CPU is runnable, and a normal thread that wakes there preempts it at once. So when
 * the standby runs and finds its runner inside a call (tm_sys odd), the runner is not runnable
 * on that CPU: it blocked in the kernel. No signal, no perf event, no privilege
 * (probes.md, section 9).
 *
 * The standby only notices. User code must never run at idle priority, and without privilege a
 * thread cannot leave SCHED_IDLE (EPERM with RLIMIT_NICE 0), so it hands the claim (C0-C5 of
 * docs/protocol.md) to a normal spare, as the watchdog does, and stays the VP's standby.
 *
 * Three things keep it honest:
 * - It follows its runner: the trap compares the runner's CPU with the standby's (ks_sb_cpu1,
 *   one plain load after T1) and kicks it when they differ; a standby that sees a call in
 *   progress on another CPU moves there itself.
 * - It does not spin when no call is in progress (the runner sleeps outside LAIO, parks in
 *   sa_release, takes a page fault): after IDLE_GRACE_NS of such idle time it sleeps on a futex
 *   (ks_sb_cpu1 = KS_SB_ASLEEP) and the next trap wakes it, like the watchdog's (an asymmetric
 *   Dekker: the trap's T1 store then its load of ks_sb_cpu1; the standby's store, membarrier,
 *   then its load of tm_sys).
 * - Idle-class threads get a sliver of CPU even while a normal thread is runnable. A standby
 *   that finds a call in progress first yields: a runner that is only preempted runs then and
 *   leaves its call; one that is blocked leaves the CPU to the standby again at once.
 */
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <sched.h>
#include <errno.h>
#include "ks.h"

#define IDLE_GRACE_NS 50000u /* idle CPU time with no call in progress before the standby sleeps */

static pthread_mutex_t retired_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ks_act *retired; /* standbys of VPs that no longer need one: they stay idle-class */

int ks_idle_available(const char **why)
{
	if (!ks_rseq_ok) {
		if (why)
			*why = "rseq registration failed: the runner's CPU cannot be read in the trap";
		return 0;
	}
	return 1;
}

static int32_t cpu_of(const struct ks_act *act)
{
	return (int32_t)__atomic_load_n(&act->ks_rseq.cpu_id, __ATOMIC_RELAXED);
}

/* Give VP `vp` an idle standby (a retired one if there is, else a spare that turns idle). */
int ks_idle_arm(struct ks_vp *vp)
{
	if (vp->ks_idle_sb)
		return 0;
	int32_t cpu = cpu_of(vp->ks_runner);
	if (cpu < 0)
		return -1; /* the runner has no rseq area: its CPU cannot be read */
	if (ks_spawner_start() < 0)
		return -1;
	pthread_mutex_lock(&retired_lock);
	struct ks_act *sb = retired;
	if (sb)
		retired = sb->ks_next;
	pthread_mutex_unlock(&retired_lock);
	if (!sb && !(sb = ks_act_get()))
		return -1;
	ks_pool_prefill(2);
	vp->ks_idle_seen_mbox = NULL;
	vp->ks_sb_pin = -1; /* the standby pins itself to ks_sb_cpu1 - 1 first */
	__atomic_store_n(&vp->ks_sb_cpu1, (uint32_t)cpu + 1, __ATOMIC_RELEASE);
	vp->ks_idle_sb = sb;
	__atomic_fetch_add(&vp->ks_refs, 1, __ATOMIC_RELAXED); /* the standby's */
	sb->ks_vp = vp;
	ks_act_give(sb, KS_TASK_IDLE, vp);
	return 0;
}

/* The VP stops using the idle detector (or dies): its standby leaves at its next look. */
void ks_idle_disarm(struct ks_vp *vp)
{
	if (!vp->ks_idle_sb)
		return;
	vp->ks_idle_sb = NULL;
	__atomic_store_n(&vp->ks_sb_cpu1, 0, __ATOMIC_SEQ_CST);
	ks_futex_wake(&vp->ks_sb_cpu1, 1);
}

static void pin(pid_t tid, int32_t cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	ks_raw_syscall6(SYS_sched_setaffinity, tid, sizeof set, (long)&set, 0, 0, 0);
}

/* Pin the standby of `vp` to `cpu` unless it is there already. Either the standby does it, or
 * the trap for it: a standby whose CPU is busy would never run to move itself. */
static void move_standby(struct ks_vp *vp, struct ks_act *sb, int32_t cpu)
{
	if (__atomic_exchange_n(&vp->ks_sb_pin, cpu, __ATOMIC_RELAXED) != cpu)
		pin(sb->ks_tid, cpu);
}

/* Send the standby of `vp` to `cpu`: pinned first (so that a wakeup finds it there, and a
 * standby whose CPU is busy need not run to move), then ks_sb_cpu1 from `cur` by CAS (a
 * disarm's 0 must stay; losing to another change is harmless: the next look tries again). */
static bool retarget(struct ks_vp *vp, struct ks_act *sb, int32_t cpu, uint32_t cur)
{
	move_standby(vp, sb, cpu);
	return __atomic_compare_exchange_n(&vp->ks_sb_cpu1, &cur, (uint32_t)cpu + 1, false,
					   __ATOMIC_SEQ_CST, __ATOMIC_RELAXED);
}

/* From the trap, after T1, on the activation's own stack and wearing the user's TLS: the
 * standby sleeps or is on another CPU than the runner. Touches no errno. */
void ks_idle_kick(struct ks_vp *vp)
{
	int32_t cpu = cpu_of(vp->ks_runner);
	uint32_t cur = __atomic_load_n(&vp->ks_sb_cpu1, __ATOMIC_RELAXED);
	struct ks_act *sb = __atomic_load_n(&vp->ks_idle_sb, __ATOMIC_ACQUIRE);
	if (cpu < 0 || cur == 0 || !sb || !retarget(vp, sb, cpu, cur))
		return;
	KS_COUNT(idle_kicks);
	if (cur == KS_SB_ASLEEP)
		ks_futex_wake(&vp->ks_sb_cpu1, 1);
}

/* Hand the claim of call `s` of `m` to a normal spare, once per call (ks_claim itself refuses
 * it at the scheduler's limit, and counts it). */
static void send_claimer(struct ks_vp *vp, struct sa_thr_mailbox *m, uint64_t s)
{
	/* from the pool only (an idle-class thread must not create one); if it is empty the
	   spawner has been asked, and the next look tries again unless no thread can be made */
	struct ks_act *spare = ks_act_take();
	if (!spare) {
		if (__atomic_load_n(&ks_stat.activations, __ATOMIC_RELAXED) >= ks_max_activations ||
		    __atomic_load_n(&ks_spawn_failed, __ATOMIC_RELAXED))
			ks_count_sync(vp, s);
		return;
	}
	vp->ks_idle_seen = s;
	vp->ks_idle_seen_mbox = m;
	ks_send_claimer(spare, vp, m, s, SA_DETECT_IDLE);
}

/* Sleep until a trap (or a disarm) changes ks_sb_cpu1, unless a call is in progress. */
static void sleep_until_kicked(struct ks_vp *vp, int32_t pinned)
{
	uint32_t cur = (uint32_t)pinned + 1;
	if (pinned < 0) /* not pinned yet: cur would be 0, and a CAS from a disarm's 0 revives it */
		return;
	if (!__atomic_compare_exchange_n(&vp->ks_sb_cpu1, &cur, KS_SB_ASLEEP, false,
					 __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
		return; /* kicked meanwhile (another CPU) or disarmed */
	ks_raw_syscall6(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0, 0, 0, 0);
	struct sa_thr_mailbox *m = __atomic_load_n(&vp->ks_mbox->sa_curthread, __ATOMIC_ACQUIRE);
	if (!(m && (__atomic_load_n(&m->tm_sys, __ATOMIC_ACQUIRE) & 1)))
		ks_futex_wait(&vp->ks_sb_cpu1, KS_SB_ASLEEP, NULL);
	cur = KS_SB_ASLEEP;
	__atomic_compare_exchange_n(&vp->ks_sb_cpu1, &cur, (uint32_t)pinned + 1, false,
				    __ATOMIC_SEQ_CST, __ATOMIC_RELAXED);
}

void ks_idle_loop(struct ks_act *act, struct ks_vp *vp)
{
	struct sched_param sp = { 0 };
	uint64_t quiet_since = 0;

	act->ks_role = KS_IDLE;
	if (!act->ks_idle_class) {
		act->ks_idle_class = true;
		KS_COUNT(idle_class);
		sched_setscheduler(0, SCHED_IDLE, &sp);
	}
	for (;;) {
		if (__atomic_load_n(&vp->ks_idle_sb, __ATOMIC_ACQUIRE) != act || vp->ks_dead)
			break;
		/* where it should be (a trap's kick pins it too; after an arm nobody has) */
		uint32_t want = __atomic_load_n(&vp->ks_sb_cpu1, __ATOMIC_ACQUIRE);
		if (want != 0 && want != KS_SB_ASLEEP)
			move_standby(vp, act, (int32_t)want - 1);
		int32_t pinned = __atomic_load_n(&vp->ks_sb_pin, __ATOMIC_RELAXED);
		struct sa_thr_mailbox *m = __atomic_load_n(&vp->ks_mbox->sa_curthread,
							   __ATOMIC_ACQUIRE);
		uint64_t s = m ? __atomic_load_n(&m->tm_sys, __ATOMIC_ACQUIRE) : 0;
		if (!(s & 1)) {
			uint64_t now = ks_now_ns();
			if (!quiet_since)
				quiet_since = now;
			if (now - quiet_since >= IDLE_GRACE_NS) {
				sleep_until_kicked(vp, pinned);
				quiet_since = 0;
			} else {
				sched_yield();
			}
			continue;
		}
		quiet_since = 0;
		int32_t rcpu = cpu_of(vp->ks_runner);
		if (rcpu >= 0 && rcpu != pinned) {
			/* the runner runs elsewhere: follow it (seen from here, its call says nothing) */
			if (want != 0)
				retarget(vp, act, rcpu, want);
			continue;
		}
		if (cpu_of(act) != pinned) {
			/* not where ks_sb_pin says: two pinnings crossed (the trap's and ours); pin
			   again rather than wait for a move that already happened */
			pin(act->ks_tid, pinned);
			sched_yield();
			continue;
		}
		if (vp->ks_idle_seen == s && vp->ks_idle_seen_mbox == m) {
			sched_yield(); /* a claim of this call is under way */
			continue;
		}
		/* Only preempted? Then it runs now and leaves the call. */
		sched_yield();
		if (__atomic_load_n(&vp->ks_mbox->sa_curthread, __ATOMIC_ACQUIRE) != m ||
		    __atomic_load_n(&m->tm_sys, __ATOMIC_ACQUIRE) != s ||
		    cpu_of(vp->ks_runner) != pinned || cpu_of(act) != pinned)
			continue;
		send_claimer(vp, m, s);
	}
	__atomic_fetch_sub(&vp->ks_refs, 1, __ATOMIC_RELEASE); /* last touch of vp */
	/* it cannot become a normal spare again without privilege: keep it for the next VP */
	act->ks_vp = NULL;
	act->ks_role = KS_SPARE;
	act->ks_skip_pool = true;
	pthread_mutex_lock(&retired_lock);
	act->ks_next = retired;
	retired = act;
	pthread_mutex_unlock(&retired_lock);
}

/* fork(): the retired standbys do not exist in the child. */
void ks_idle_atfork_child(void)
{
	pthread_mutex_init(&retired_lock, NULL);
	retired = NULL;
}
