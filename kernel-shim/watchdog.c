/*
 * watchdog.c - the watchdog detector, Go's sysmon rule: a VP whose runner is inside the same
 * call (same tm_sys) at two consecutive looks is taken to have blocked, and a spare is sent to
 * claim it. Looks start 20 us apart and double up to 10 ms while nothing is in a call; after
 * 50 ms with nothing in a call the watchdog sleeps on a futex, and the first trap to find it
 * asleep wakes it (trap.S). Timer slack is 1 ns: with the default 50 us, a 20 us sleep takes
 * ~110 us here (probes.md, 4d).
 */
#include <linux/membarrier.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <signal.h>
#include <unistd.h>
#include <time.h>
#include "ks.h"

#define WD_MIN_NS 20000u
#define WD_MAX_NS 10000000u
#define WD_IDLE_SLEEP_NS 50000000u

__attribute__((visibility("hidden"))) volatile uint32_t ks_wd_asleep;
static pthread_mutex_t wd_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t wd_pid; /* the process whose watchdog runs (a forked child starts its own) */

static bool watched(struct ks_vp *vp)
{
	return !vp->ks_dead && (vp->ks_lazy == SA_DETECT_WATCHDOG || vp->ks_wd_fallback);
}

/* One look at every watched VP. Returns whether any runner was inside a call. */
static bool look(void)
{
	bool busy = false;
	pthread_mutex_lock(&ks_vps_lock);
	for (struct ks_vp *vp = ks_all_vps; vp; vp = vp->ks_all_next) {
		if (!watched(vp))
			continue;
		struct sa_thr_mailbox *m = __atomic_load_n(&vp->ks_mbox->sa_curthread, __ATOMIC_ACQUIRE);
		if (!m)
			continue;
		uint64_t s = __atomic_load_n(&m->tm_sys, __ATOMIC_ACQUIRE);
		if (!(s & 1)) {
			vp->ks_wd_mbox = NULL;
			continue;
		}
		busy = true;
		if (vp->ks_wd_mbox == m && vp->ks_wd_seen == s &&
		    (vp->ks_wd_claimed != s || vp->ks_wd_claimed_mbox != m)) {
			struct ks_act *spare = ks_act_get();
			if (!spare) {
				ks_count_sync(vp, s); /* the call completes synchronously */
			} else {
				vp->ks_wd_claimed = s;
				vp->ks_wd_claimed_mbox = m;
				ks_send_claimer(spare, vp, m, s, SA_DETECT_WATCHDOG);
			}
		}
		vp->ks_wd_mbox = m;
		vp->ks_wd_seen = s;
	}
	pthread_mutex_unlock(&ks_vps_lock);
	return busy;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };
	while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) != 0)
		;
}

static void *watchdog_main(void *arg)
{
	uint64_t delay = WD_MIN_NS, idle = 0;
	(void)arg;
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	for (;;) {
		if (look()) {
			delay = WD_MIN_NS;
			idle = 0;
		} else {
			delay = delay * 2 > WD_MAX_NS ? WD_MAX_NS : delay * 2;
			idle += delay;
		}
		if (idle >= WD_IDLE_SLEEP_NS) {
			/* asymmetric Dekker with the trap's T1 store and its plain load of ks_wd_asleep */
			ks_wd_asleep = 1;
			syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
			if (!look())
				ks_futex_wait((uint32_t *)&ks_wd_asleep, 1, NULL);
			ks_wd_asleep = 0;
			idle = 0;
			delay = WD_MIN_NS;
			continue;
		}
		sleep_ns(delay);
	}
	return NULL;
}

int ks_watchdog_start(void)
{
	pthread_t t;
	int rc = 0;
	pthread_attr_t attr;
	sigset_t all, old;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	sigfillset(&all);
	pthread_mutex_lock(&wd_lock);
	if (wd_pid != getpid()) {
		pthread_sigmask(SIG_SETMASK, &all, &old);
		rc = pthread_create(&t, &attr, watchdog_main, NULL) == 0 ? 0 : -1;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (rc == 0)
			wd_pid = getpid();
	}
	pthread_mutex_unlock(&wd_lock);
	pthread_attr_destroy(&attr);
	return rc;
}

void ks_watchdog_atfork_child(void)
{
	pthread_mutex_init(&wd_lock, NULL);
	ks_wd_asleep = 0;
}
