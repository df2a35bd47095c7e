/*
 * idle.c - the idle detector: the kernel's own scheduler tells us that a runner blocked.
 *
 * One standby activation per CPU, at policy SCHED_IDLE, pinned to its CPU once and never moved.
 * The scheduler runs an idle-class thread only when nothing else on its CPU wants to run, and a
 * normal thread that wakes there preempts it at once. So a standby that runs knows its CPU is
 * idle: a runner that last ran user code on that CPU (rseq's cpu_id) and is inside a call has
 * left the CPU, most likely asleep in the kernel. The standby proposes a claim (C0-C5 of
 * docs/protocol.md) to a normal spare; the claim confirms that the runner sleeps (confirm.c),
 * because cpu_id is only rewritten on the way back to user space: a runner woken on another CPU
 * still shows this one. No signal, no perf event, no privilege.
 *
 * Protocol of a standby on CPU c (names used in docs/protocol.md and test/model/idle.pml):
 *   I1 scan    every VP of this detector whose runner shows CPU c and is in a call (tm_sys
 *              odd) not yet proposed: send a claimer, a spare that slept on c if one did (it
 *              wakes here at once). A call is proposed once, and again only after a refused
 *              claim (ks_propose_due).
 *   I2 announce  nothing in progress on c for IDLE_GRACE_NS: state ASLEEP, this detector's bit in
 *              ks_kick[c], membarrier (so every runner's T1 store is visible, and every later
 *              trap on c loads the bit)
 *   I3 recheck scan again; a call found: back to I1. Else sleep on the state word until a
 *              trap's kick (CAS ASLEEP -> AWAKE, futex wake) or forever.
 * The trap kicks only the standby of the CPU it runs on. A runner that moves to another CPU
 * between its load of ks_kick and its system call still shows the CPU it kicked (rseq is
 * rewritten only on the way out of the kernel), whose standby sees the call once that CPU is
 * idle. On a CPU that is never idle the watchdog's backstop (watchdog.c) sees it at its next look
 * (0.1 ms apart, up to 1 ms while the program makes progress).
 *
 * Where the process may make cpu cgroups, a VP gets a group of its own instead (vpgroup.c): a
 * standby per CPU that watches only that VP runs inside it, so that it gets the CPU the moment
 * the runner blocks even on a busy machine. Those standbys keep this detector's bit in ks_kick
 * set for good (several may sleep on one CPU) and are kicked through their VP.
 *
 * The standby reads VPs without a lock (vp.c keeps them type-stable) and holds no lock that a
 * normal thread could wait for: an idle-class thread may not run for as long as its CPU is busy.
 * It holds a reference to a VP only for one look (a few loads), because the mailboxes it reads
 * are the program's memory: sa_free() waits for that look to end. A standby preempted inside a
 * look on a busy CPU delays a thread's exit by that much, never a call.
 */
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <sched.h>
#include <unistd.h>
#include "ks.h"

#define IDLE_GRACE_NS 50000u /* idle CPU time with no call in progress before a standby sleeps */
#define YIELD_IDLE_NS 20000u /* a yield that took longer gave the CPU to another thread */

enum { SB_AWAKE, SB_ASLEEP };
struct standby {
	uint32_t state;              /* futex: SB_ASLEEP while it sleeps */
	int32_t cpu;
	struct ks_vp *only;          /* a VP's own standby (in its cgroup), or NULL: every VP's */
	struct ks_vpg *grp;
} __attribute__((aligned(64)));

static struct standby sb[KS_MAXCPU];
static int nsb;                      /* standbys started (CPUs 0 .. nsb - 1) */
static pid_t sb_pid;                 /* the process whose standbys run */
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static int nown;                     /* standbys of a VP of its own (one per CPU) */
static uint32_t own_sets;            /* VPs with standbys of their own now */

static int available(const char **why)
{
	if (!ks_rseq_ok) {
		if (why)
			*why = "rseq registration failed: the runner's CPU cannot be read in the trap";
		return 0;
	}
	return 1;
}

/* I1 for one live VP: true if its runner shows `cpu` and is in a call. `idle`: the standby knows
 * its CPU idle (not just its turn at idle weight), and tells the backstop so. */
static bool look(struct ks_vp *vp, int32_t cpu, bool idle, uint64_t now)
{
	if (__atomic_load_n(&vp->ks_det, __ATOMIC_ACQUIRE) != &ks_det_idle)
		return false;
	struct ks_act *runner = __atomic_load_n(&vp->ks_runner, __ATOMIC_ACQUIRE);
	if (ks_cpu_of(runner) != cpu)
		return false;
	if (idle)
		ks_backstop_covered(vp, now);
	struct sa_thr_mailbox *m = __atomic_load_n(&vp->ks_mbox->sa_curthread, __ATOMIC_ACQUIRE);
	uint64_t s = m ? __atomic_load_n(&m->tm_sys, __ATOMIC_ACQUIRE) : 0;
	if (!(s & 1))
		return false;
	if (!ks_propose_due(&vp->ks_idle.claimed, m, s, now))
		return true; /* proposed already */
	/* No yield first to let a merely preempted runner leave its call: an idle-class thread runs
	   only when no normal thread of its group is runnable on its CPU, and the claim confirms
	   that the runner sleeps (a runner running elsewhere, its rseq stale, is refused there). */
	if (vp->ks_grp ? ks_vpg_send_claimer(vp, m, s, SA_DETECT_IDLE)
		       : ks_send_claimer(vp, m, s, SA_DETECT_IDLE, cpu))
		ks_proposed(&vp->ks_idle.claimed, m, s, ks_now_ns());
	return true;
}

/* I1: propose claims for the calls in progress on s's CPU; true if any is in progress. */
static bool scan(const struct standby *st, bool idle)
{
	int32_t cpu = st->cpu;
	bool busy = false;
	uint64_t now = ks_now_ns();
	for (struct ks_vp *vp = __atomic_load_n(&ks_all_vps, __ATOMIC_ACQUIRE); vp;
	     vp = vp->ks_all_next) {
		/* a reference first, then "still live?": sa_free() waits for the reference, so the
		   mailboxes (the program's memory) stay valid while this look lasts */
		if (__atomic_load_n(&vp->ks_det, __ATOMIC_ACQUIRE) != &ks_det_idle ||
		    (st->only ? vp != st->only : vp->ks_idle.own != NULL))
			continue;
		ks_vp_ref(vp);
		if (!__atomic_load_n(&vp->ks_dead, __ATOMIC_SEQ_CST))
			busy |= look(vp, cpu, idle, now);
		ks_vp_unref(vp);
	}
	return busy;
}

static void set_kick(int32_t cpu, bool on)
{
	if (!on && __atomic_load_n(&own_sets, __ATOMIC_SEQ_CST))
		return; /* other standbys of this CPU may sleep */
	if (on)
		__atomic_fetch_or(&ks_kick[cpu], 1u << SA_DETECT_IDLE, __ATOMIC_SEQ_CST);
	else
		__atomic_fetch_and(&ks_kick[cpu], ~(1u << SA_DETECT_IDLE), __ATOMIC_SEQ_CST);
}

/* A VP's own standby whose VP let its group go. */
static bool stopping(const struct standby *s)
{
	return s->grp && ks_vpg_stopping(s->grp);
}

/* I2, I3 and the sleep. */
static void sleep_until_kicked(struct standby *s)
{
	__atomic_store_n(&s->state, SB_ASLEEP, __ATOMIC_SEQ_CST);
	set_kick(s->cpu, true);                                                       /* I2 */
	ks_raw_syscall6(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0, 0, 0, 0);
	if (!stopping(s) && !scan(s, false))                                          /* I3 */
		while (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) == SB_ASLEEP)
			ks_futex_wait(&s->state, SB_ASLEEP, NULL);
	__atomic_store_n(&s->state, SB_AWAKE, __ATOMIC_SEQ_CST);
	set_kick(s->cpu, false);
}

/* Yield; true if the CPU came straight back. An idle-class thread also runs beside busy normal
 * threads of its cgroup, at a weight of 3 against their 1024 (a turn now and then), so that it
 * runs at all does not show an idle CPU; that its yield returns at once does. */
static bool yield_finds_idle(void)
{
	uint64_t t = ks_now_ns();
	sched_yield();
	return ks_now_ns() - t < YIELD_IDLE_NS;
}

static void standby_task(struct ks_act *act, void *arg)
{
	struct standby *s = arg;
	struct sched_param sp = { 0 };
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(s->cpu, &set);
	act->ks_role = KS_STANDBY;
	if (s->grp)
		ks_vpg_standby_enter(s->grp);
	if (sched_setaffinity(0, sizeof set, &set) != 0) {
		if (s->grp)
			ks_vpg_standby_leave(act, s->grp);
		return; /* a CPU this process may not use: no runner will show it */
	}
	if (!act->ks_idle_class) { /* a VP's standby kept at SCHED_IDLE is counted already */
		act->ks_idle_class = true;
		if (!act->ks_counted) /* a spare taken for a VP's standby is already */
			KS_COUNT(activations); /* counted as idle-class activations, as sa_counters(3) says */
		act->ks_counted = true;
		KS_COUNT(idle_class);
	}
	sched_setscheduler(0, SCHED_IDLE, &sp);
	uint64_t quiet_since = 0;
	bool idle = false;
	for (;;) {
		if (stopping(s)) {
			ks_vpg_standby_leave(act, s->grp);
			return;
		}
		if (scan(s, idle)) {
			quiet_since = 0;
			idle = yield_finds_idle();
			continue;
		}
		if (s->grp)
			ks_vpg_refill(s->grp);
		uint64_t now = ks_now_ns();
		if (!quiet_since)
			quiet_since = now;
		if (now - quiet_since < IDLE_GRACE_NS) {
			idle = yield_finds_idle();
			continue;
		}
		sleep_until_kicked(s);
		quiet_since = 0;
		idle = false;
	}
}

static int ncpu_conf(void)
{
	long n = sysconf(_SC_NPROCESSORS_CONF);
	return n < 1 ? 1 : n > KS_MAXCPU - 1 ? KS_MAXCPU - 1 : (int)n;
}

/* A standby per CPU in vp's own cpu cgroup: 0, or -1 when it cannot have one. */
static int arm_own(struct ks_vp *vp)
{
	const char *why;
	int n = ncpu_conf();
	struct ks_vpg *grp = ks_vpg_new(vp, n, sizeof(struct standby), &why);
	if (!grp)
		return -1;
	struct standby *own = ks_vpg_standbys(grp);
	__atomic_store_n(&nown, n, __ATOMIC_RELAXED);
	__atomic_fetch_add(&own_sets, 1, __ATOMIC_SEQ_CST);
	for (int c = 0; c < n; c++)
		own[c] = (struct standby){ SB_AWAKE, c, vp, grp };
	vp->ks_idle.own = own;
	for (int c = 0; c < n; c++)
		if (ks_vpg_start_standby(standby_task, &own[c]) != 0)
			ks_vpg_drop(grp); /* none on that CPU: the backstop sees its calls */
	return 0;
}

/* A standby on every CPU, once per process (they serve every VP of this detector). */
static int arm_shared(void)
{
	int rc = 0;
	pthread_mutex_lock(&start_lock);
	if (sb_pid != getpid()) {
		nsb = ncpu_conf();
		for (int c = 0; c < nsb && rc == 0; c++) {
			sb[c] = (struct standby){ SB_AWAKE, c, NULL, NULL };
			rc = ks_act_start(standby_task, &sb[c]);
		}
		if (rc == 0)
			sb_pid = getpid();
	}
	pthread_mutex_unlock(&start_lock);
	return rc;
}

static int arm(struct ks_vp *vp)
{
	vp->ks_idle.claimed = (struct ks_seen){ NULL, 0, 0, 0 };
	int rc = arm_own(vp) == 0 ? 0 : arm_shared();
	/* the backstop: a call the standbys never get to see (a busy CPU) */
	return rc == 0 ? ks_watchdog_watch(vp, KS_WATCH_BACKSTOP) : -1;
}

/* The VP's own standbys leave its group and the group goes (the last one out removes it). */
static void disarm(struct ks_vp *vp)
{
	struct standby *own = vp->ks_idle.own;
	if (!own)
		return;
	vp->ks_idle.own = NULL;
	ks_vpg_stop(vp->ks_grp);
	for (int c = 0; c < nown; c++) {
		uint32_t asleep = SB_ASLEEP;
		if (__atomic_compare_exchange_n(&own[c].state, &asleep, SB_AWAKE, false,
						__ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
			ks_futex_wake(&own[c].state, 1);
	}
	ks_vpg_release(vp); /* own may be freed from here on */
	__atomic_fetch_sub(&own_sets, 1, __ATOMIC_SEQ_CST);
}

/* From the trap, after T1, on the activation's own stack and wearing the user's TLS: the
 * standby of `cpu` sleeps. Touches no errno. */
static void kick(struct ks_vp *vp, int32_t cpu)
{
	struct standby *own = vp->ks_idle.own, *s = own ? own : sb;
	if (cpu < 0 || cpu >= (own ? nown : nsb))
		return;
	if (own && __atomic_load_n(&own[cpu].state, __ATOMIC_RELAXED) != SB_ASLEEP)
		return; /* its bit stays set: no locked instruction on every call */
	uint32_t asleep = SB_ASLEEP;
	if (__atomic_compare_exchange_n(&s[cpu].state, &asleep, SB_AWAKE, false,
					__ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
		set_kick(cpu, false);
		KS_COUNT(idle_kicks);
		ks_futex_wake(&s[cpu].state, 1);
	}
}

/* fork(): the child has none of the standbys. */
static void atfork_child(void)
{
	pthread_mutex_init(&start_lock, NULL);
	own_sets = 0; /* the standbys were the parent's threads */
	ks_vpg_atfork_child();
	for (int c = 0; c < nsb; c++)
		set_kick(c, false);
	nsb = 0;
}

const struct ks_detector ks_det_idle = {
	.name = "idle",
	.id = SA_DETECT_IDLE,
	.available = available,
	.arm = arm,
	.disarm = disarm,
	.runner_changed = ks_vpg_runner_changed,
	.kick = kick,
	.atfork_child = atfork_child,
};
