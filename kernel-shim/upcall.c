/*
 * upcall.c - the upcall detector: the kernel tells us when a runner is switched out.
 *
 * Each runner carries a perf software event PERF_COUNT_SW_CONTEXT_SWITCHES (exclude_kernel=0:
 * the switch is counted in kernel context) with sample_period 1; its overflow raises
 * KS_SIG_UPCALL, routed (F_SETOWN_EX, F_OWNER_TID) to the VP's *standby* activation, which waits
 * in sigwaitinfo(). Routing the signal to the blocked thread itself, as the rr debugger's desched
 * event does, fails for uninterruptible sleeps; the standby does not care how the runner sleeps.
 *
 * A switch-out is also a preemption; the claim tells the two apart (it confirms that the runner
 * sleeps in its call, confirm.c). Switch-outs outside a call (tm_sys even) are ignored. The event
 * costs ~17 us per switch-out in a guest (a self-IPI), so it is disabled while the runner parks
 * on purpose (sa_release) and on every activation that is not a runner.
 */
#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <errno.h>
#include "ks.h"

static int avail = -1;          /* -1 unknown, 0 no, 1 yes */
static const char *avail_why = "";

static int open_event(pid_t tid)
{
	struct perf_event_attr a = { 0 };
	a.type = PERF_TYPE_SOFTWARE;
	a.size = sizeof a;
	a.config = PERF_COUNT_SW_CONTEXT_SWITCHES;
	a.sample_period = 1;
	a.wakeup_events = 1;
	a.disabled = 1;
	a.exclude_kernel = 0; /* must be 0: the switch is counted in kernel context */
	return (int)syscall(SYS_perf_event_open, &a, tid, -1, -1, PERF_FLAG_FD_CLOEXEC);
}

static int available(const char **why)
{
	if (avail < 0) {
		int fd = open_event((pid_t)syscall(SYS_gettid));
		if (fd >= 0) {
			close(fd);
			avail = 1;
		} else {
			avail = 0;
			avail_why = errno == EACCES || errno == EPERM
				? "perf_event_open: permission denied (needs root, CAP_PERFMON or "
				  "kernel.perf_event_paranoid <= 1)"
				: "perf_event_open failed (no perf events in this kernel?)";
		}
	}
	if (why)
		*why = avail ? "" : avail_why;
	return avail;
}

/* Send the events of `fd` to activation `to` as KS_SIG_UPCALL. */
static int route(int fd, pid_t to)
{
	struct f_owner_ex own = { F_OWNER_TID, to };
	if (fcntl(fd, F_SETFL, O_ASYNC) < 0 || fcntl(fd, F_SETSIG, KS_SIG_UPCALL) < 0 ||
	    fcntl(fd, F_SETOWN_EX, &own) < 0)
		return -1;
	return 0;
}

/* Close the event of an activation that stops being a runner: with thousands of calls in
 * the background, one descriptor each would exhaust the process's descriptor table. */
static void release_event(struct ks_act *act)
{
	int fd = act->ks_perf_fd;
	if (fd < 0)
		return;
	act->ks_perf_fd = -1;
	close(fd);
}

static void standby_task(struct ks_act *act, void *arg);

/* Watch the VP's runner: its own event, routed to the VP's standby. */
static int watch_runner(struct ks_vp *vp)
{
	struct ks_act *runner = vp->ks_runner;
	if (available(NULL) != 1)
		return -1;
	if (runner->ks_perf_fd < 0 && (runner->ks_perf_fd = open_event(runner->ks_tid)) < 0)
		return -1;
	struct ks_act *sb = vp->ks_up.standby;
	if (!sb || sb == runner) { /* none yet, or it claimed the VP and runs it now */
		if (!(sb = ks_act_take()))
			return -1;
		vp->ks_up.standby = sb;
		ks_vp_ref(vp); /* the standby's */
		ks_act_give(sb, standby_task, vp);
	}
	if (route(runner->ks_perf_fd, sb->ks_tid) < 0)
		return -1;
	ioctl(runner->ks_perf_fd, PERF_EVENT_IOC_ENABLE, 0);
	return 0;
}

static int arm(struct ks_vp *vp)
{
	return watch_runner(vp);
}

/* The standby leaves at its next notice. */
static void disarm(struct ks_vp *vp)
{
	struct ks_act *sb = vp->ks_up.standby;
	if (vp->ks_runner->ks_perf_fd >= 0)
		ioctl(vp->ks_runner->ks_perf_fd, PERF_EVENT_IOC_DISABLE, 0);
	if (sb) {
		vp->ks_up.standby = NULL;
		ks_raw_syscall6(SYS_tgkill, getpid(), sb->ks_tid, KS_SIG_UPCALL, 0, 0, 0);
	}
}

/* At C4: the blocked runner keeps no descriptor; the new one is watched. Where its event
 * cannot be set up (no descriptor left, no memory) the VP must not go unwatched: the watchdog
 * takes it over. */
static void runner_changed(struct ks_vp *vp, struct ks_act *old)
{
	release_event(old);
	if (watch_runner(vp) < 0)
		ks_watchdog_watch(vp, KS_WATCH_DETECT);
}

static void park(struct ks_vp *vp, bool parking)
{
	struct ks_act *act = vp->ks_runner;
	if (act->ks_perf_fd >= 0 && vp->ks_up.standby)
		ioctl(act->ks_perf_fd, parking ? PERF_EVENT_IOC_DISABLE : PERF_EVENT_IOC_ENABLE, 0);
}

static void standby_task(struct ks_act *act, void *arg)
{
	struct ks_vp *vp = arg;
	sigset_t set;
	siginfo_t si;
	sigemptyset(&set);
	sigaddset(&set, KS_SIG_UPCALL);
	act->ks_role = KS_STANDBY;
	/* Notices queued for an earlier role are not drained blindly: the runner may already have
	   blocked, and its notice may be among them. Every notice is judged by the VP's state. */
	for (;;) {
		/* the raw call: no sanitizer interceptor on an activation's own stack */
		if (ks_raw_syscall6(SYS_rt_sigtimedwait, (long)&set, (long)&si, 0, 8, 0, 0) < 0)
			continue;
		if (vp->ks_up.standby != act || vp->ks_dead) {
			ks_vp_unref(vp); /* last touch of vp */
			return;
		}
		struct ks_act *runner = vp->ks_runner;
		struct sa_thr_mailbox *m = __atomic_load_n(&vp->ks_mbox->sa_curthread, __ATOMIC_ACQUIRE);
		if (!m || si.si_fd != runner->ks_perf_fd)
			continue;
		uint64_t s = __atomic_load_n(&m->tm_sys, __ATOMIC_ACQUIRE);
		if (!(s & 1))
			continue; /* not in a call */
		act->ks_vp = vp;
		ks_claim(act, vp, m, s, SA_DETECT_UPCALL); /* does not return if it wins */
		act->ks_role = KS_STANDBY;
	}
}

const struct ks_detector ks_det_upcall = {
	.name = "upcall",
	.id = SA_DETECT_UPCALL,
	.available = available,
	.arm = arm,
	.disarm = disarm,
	.runner_changed = runner_changed,
	.park = park,
	.retire = release_event,
};
