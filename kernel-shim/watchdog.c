/*
 * watchdog.c - the watchdog: Go's sysmon rule, and the backstop of the other detectors.
 *
 * As a detector (LAIO_DETECTOR=watchdog, or where the upcall detector failed): a VP whose runner
 * is inside the same call (same tm_sys) at two consecutive looks is taken to have blocked, and a
 * spare is sent to claim it (the claim confirms that it sleeps). Looks start 20 us apart and
 * double up to 10 ms while nothing is in a call.
 *
 * As the backstop of the idle detector: its standbys run only when their CPU has nothing else to
 * do, which on a busy machine may be never. A call of an idle-detector VP that the watchdog
 * finds in progress with its runner asleep (ks_runner_sleeps: a long call that runs is not
 * worth a spare's wakeup) is claimed the same way, at the first look; where the runner's state
 * cannot be read (a process that gave up root cannot read its own /proc files), only at the
 * second look that finds the same call, as the watchdog detector does. While a look finds a call
 * in progress, or the one the look before found, the next comes BACKSTOP_NS later (the watchdog
 * is a normal thread with no timer slack: beside a CPU hog per CPU its timer wakes it ~65 us
 * late here). While each look finds another call, running, the program is making progress and
 * the looks back off, doubling up to BACKSTOP_EASE_NS apart: a server that is inside some call
 * most of the time (each recv and send goes through the trap) would otherwise wake the watchdog
 * every BACKSTOP_NS on the CPU it shares with the runner, for nothing (measured on the web
 * server: a quarter of its CPU time at 4,000 looks a second). A VP whose CPU a standby found
 * idle in the last COVER_NS is left to that standby (ks_backstop_covered): a call that blocks
 * there is noticed in microseconds, and the look reads no /proc file and proposes nothing. While
 * no call is in progress the looks stay at most BACKSTOP_EASE_NS apart for BACKSTOP_QUIET_NS (a
 * program that makes calls with short gaps gets each looked at within a millisecond), then back
 * off as the detector's do.
 *
 * After 50 ms with nothing in a call the watchdog sleeps on a futex with its bit set in every
 * ks_kick word (W1), pays a membarrier (W2) and looks once more (W3); the first trap that loads
 * the bit wakes it (kick). Not sooner: the kicked watchdog preempts the runner on its CPU, which
 * costs the first call after the sleep ~30 us here.
 */
#include <linux/membarrier.h>
#include <sys/prctl.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <time.h>
#include <string.h>
#include "ks.h"

#define WD_MIN_NS 20000u
#define WD_MAX_NS 10000000u
#define WD_IDLE_SLEEP_NS 50000000u
#define BACKSTOP_NS 100000u
#define BACKSTOP_EASE_NS 1000000u
#define COVER_NS 1000000u
#define BACKSTOP_QUIET_NS 5000000u

enum { WD_AWAKE, WD_ASLEEP };
static uint32_t wd_state;        /* futex: WD_ASLEEP while it sleeps */
static pthread_mutex_t wd_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t wd_pid;             /* the process whose watchdog runs (a forked child starts its own) */
static struct ks_act *wd_act;    /* its activation */

/* ordered by urgency: look() returns the most urgent of its VPs' */
enum { LOOK_IDLE, LOOK_QUIET, LOOK_PROGRESS, LOOK_BACKSTOP, LOOK_BUSY };

/* How the watchdog treats vp: not at all, as a backstop, or as its detector. */
static int role(const struct ks_vp *vp)
{
	if (__atomic_load_n(&vp->ks_dead, __ATOMIC_SEQ_CST))
		return LOOK_IDLE;
	switch (__atomic_load_n(&vp->ks_watch, __ATOMIC_ACQUIRE)) {
	case KS_WATCH_DETECT: return LOOK_BUSY;
	case KS_WATCH_BACKSTOP: return LOOK_BACKSTOP;
	}
	return LOOK_IDLE;
}

/* A standby of the CPU vp's runner shows looked at vp less than COVER_NS ago: that CPU goes
 * idle, and a call that blocks there is the standby's to notice within microseconds. */
static bool covered(const struct ks_vp_watchdog *w, uint64_t now)
{
	uint64_t t = __atomic_load_n(&w->covered_ns, __ATOMIC_RELAXED);
	return now - t < COVER_NS;
}

/* From a standby looking at vp, whose runner shows the standby's CPU. A store only every few
 * microseconds: a standby on an idle CPU looks in a loop. */
void ks_backstop_covered(struct ks_vp *vp, uint64_t now)
{
	uint64_t *t = &vp->ks_wd.covered_ns;
	if (now - __atomic_load_n(t, __ATOMIC_RELAXED) > COVER_NS / 64)
		__atomic_store_n(t, now, __ATOMIC_RELAXED);
}

/* Where to wake the claimer: away from the watchdog's own CPU where there is another. A claimer
 * woken here preempts the watchdog, which then waits, runnable but behind its lag, for the next
 * tick while a CPU hog runs here (4 ms at HZ=250), and the next call that blocks waits for its
 * look as long. A spare that slept on another CPU is woken there. */
static cpu_set_t wd_cpus; /* where the watchdog may run (its creator's mask): read with a system
			   call, not sysconf, which opens a file and could take, for a moment, the
			   number the program's next open() should get */

static int32_t claimer_cpu(void)
{
	int32_t here = ks_cpu_of(wd_act);
	if (here < 0 || here >= CPU_SETSIZE)
		return -1;
	for (int32_t i = 1; i < CPU_SETSIZE; i++) {
		int32_t c = (here + i) % CPU_SETSIZE;
		if (CPU_ISSET(c, &wd_cpus))
			return c;
	}
	return -1;
}

/* One look at one VP at time `now`; returns what it asks of the next look's delay. */
static int look_at(struct ks_vp *vp, uint64_t now)
{
	int r = role(vp);
	if (r == LOOK_IDLE)
		return LOOK_IDLE;
	struct sa_thr_mailbox *m = __atomic_load_n(&vp->ks_mbox->sa_curthread, __ATOMIC_ACQUIRE);
	uint64_t s = m ? __atomic_load_n(&m->tm_sys, __ATOMIC_ACQUIRE) : 0;
	struct ks_vp_watchdog *w = &vp->ks_wd;
	if (!(s & 1)) {
		w->look.m = NULL;
		return r == LOOK_BACKSTOP ? LOOK_QUIET : LOOK_IDLE;
	}
	bool first = !ks_seen_is(&w->look, m, s);
	if (first) {
		/* a call it has not seen before: the first look (enough for the backstop, which
		   asks whether the runner sleeps) */
		w->look = (struct ks_seen){ m, s, 0, 0 };
		if (r != LOOK_BACKSTOP)
			return r;
	}
	if (!ks_propose_due(&w->claimed, m, s, now))
		return r;
	if (r == LOOK_BACKSTOP && covered(w, now))
		return LOOK_PROGRESS; /* a standby sees this CPU idle: the call is its to notice */
	if (r == LOOK_BACKSTOP) {
		int sleeps = ks_runner_sleeps(vp);
		if (sleeps == 0)
			return first ? LOOK_PROGRESS : r; /* another call, and it runs: progress */
		if (sleeps < 0 && first)
			return r; /* cannot tell: the watchdog's own rule, the same call at two looks */
	}
	if (ks_send_claimer(vp, m, s, r == LOOK_BUSY ? SA_DETECT_WATCHDOG : SA_DETECT_IDLE,
			    claimer_cpu()))
		ks_proposed(&w->claimed, m, s, now);
	return r;
}

/* One look at every VP. Returns the most urgent need: LOOK_BUSY, LOOK_BACKSTOP, LOOK_PROGRESS,
 * LOOK_QUIET (a backstopped VP with no call in progress) or LOOK_IDLE. */
static int look(void)
{
	int need = LOOK_IDLE;
	uint64_t now = ks_now_ns();
	for (struct ks_vp *vp = __atomic_load_n(&ks_all_vps, __ATOMIC_ACQUIRE); vp;
	     vp = vp->ks_all_next) {
		/* a reference, then "still live?": the mailboxes stay valid while it looks */
		ks_vp_ref(vp);
		int r = look_at(vp, now);
		ks_vp_unref(vp);
		if (r > need)
			need = r;
	}
	return need;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };
	while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) != 0)
		;
}

/* W1-W3, then sleep until a trap kicks. */
static void sleep_until_kicked(void)
{
	__atomic_store_n(&wd_state, WD_ASLEEP, __ATOMIC_SEQ_CST);
	ks_kick_set_all(SA_DETECT_WATCHDOG, true);                                  /* W1 */
	ks_raw_syscall6(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0, 0, 0, 0); /* W2 */
	if (look() <= LOOK_QUIET)                                                    /* W3 */
		while (__atomic_load_n(&wd_state, __ATOMIC_ACQUIRE) == WD_ASLEEP)
			ks_futex_wait(&wd_state, WD_ASLEEP, NULL);
	__atomic_store_n(&wd_state, WD_AWAKE, __ATOMIC_SEQ_CST);
	ks_kick_set_all(SA_DETECT_WATCHDOG, false);
}

static void watchdog_task(struct ks_act *self, void *arg)
{
	uint64_t delay = WD_MIN_NS, idle = 0;
	(void)arg;
	self->ks_role = KS_STANDBY;
	wd_act = self;
	if (sched_getaffinity(0, sizeof wd_cpus, &wd_cpus) != 0)
		CPU_ZERO(&wd_cpus);
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* the default 50 us slack would dominate */
	for (;;) {
		switch (look()) {
		case LOOK_BUSY:
			delay = WD_MIN_NS;
			idle = 0;
			break;
		case LOOK_BACKSTOP:
			delay = BACKSTOP_NS;
			idle = 0;
			break;
		case LOOK_PROGRESS:
			delay = delay < BACKSTOP_NS ? BACKSTOP_NS
			      : delay * 2 > BACKSTOP_EASE_NS ? BACKSTOP_EASE_NS : delay * 2;
			idle = 0;
			break;
		case LOOK_QUIET: /* a call that starts soon after the last is looked at soon */
			if (idle < BACKSTOP_QUIET_NS) {
				delay = delay * 2 > BACKSTOP_EASE_NS ? BACKSTOP_EASE_NS : delay * 2;
				idle += delay;
				break;
			}
			/* fall through */
		default:
			delay = delay * 2 > WD_MAX_NS ? WD_MAX_NS : delay * 2;
			idle += delay;
		}
		if (idle >= WD_IDLE_SLEEP_NS) {
			sleep_until_kicked();
			idle = 0;
			delay = WD_MIN_NS;
			continue;
		}
		sleep_ns(delay);
	}
}

int ks_watchdog_start(void)
{
	int rc = 0;
	pthread_mutex_lock(&wd_lock);
	if (wd_pid != getpid()) {
		rc = ks_act_start(watchdog_task, NULL);
		if (rc == 0)
			wd_pid = getpid();
	}
	pthread_mutex_unlock(&wd_lock);
	return rc;
}

/* Watch vp as its detector (the watchdog's own VPs, and where another detector failed: the
 * upcall detector's event could not be set up) or as a backstop. 0 or -1 (no thread). */
int ks_watchdog_watch(struct ks_vp *vp, int how)
{
	memset(&vp->ks_wd, 0, sizeof vp->ks_wd);
	__atomic_store_n(&vp->ks_watch, how, __ATOMIC_RELEASE);
	return ks_watchdog_start();
}

static int arm(struct ks_vp *vp)
{
	return ks_watchdog_watch(vp, KS_WATCH_DETECT);
}

/* From the trap: the watchdog sleeps and a call starts. Touches no errno. */
static void kick(struct ks_vp *vp, int32_t cpu)
{
	uint32_t asleep = WD_ASLEEP;
	(void)vp;
	(void)cpu;
	if (__atomic_compare_exchange_n(&wd_state, &asleep, WD_AWAKE, false, __ATOMIC_SEQ_CST,
					__ATOMIC_RELAXED))
		ks_futex_wake(&wd_state, 1);
}

static void atfork_child(void)
{
	pthread_mutex_init(&wd_lock, NULL);
	wd_state = WD_AWAKE;
	ks_kick_set_all(SA_DETECT_WATCHDOG, false);
}

const struct ks_detector ks_det_watchdog = {
	.name = "watchdog",
	.id = SA_DETECT_WATCHDOG,
	.arm = arm,
	.kick = kick,
	.atfork_child = atfork_child,
};
