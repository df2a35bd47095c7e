/*
 * upcall.c - the upcall detector: the kernel tells us when a runner is switched out.
 *
 * Each runner carries a perf software event PERF_COUNT_SW_CONTEXT_SWITCHES (exclude_kernel=0:
 * the switch is counted in kernel context) with sample_period 1; its overflow raises
 * KS_SIG_UPCALL, routed (F_SETOWN_EX, F_OWNER_TID) to the VP's *standby* activation, which waits
 * in sigwaitinfo(). Routing the signal to the blocked thread itself, as the rr debugger's desched
 * event does, fails for uninterruptible sleeps; the standby does not care how the runner sleeps.
 *
 * The standby tells a block from a preemption by the runner's scheduler state in
 * /proc/self/task/TID/stat ('R': runnable, preempted; anything else: asleep in the kernel) and
 * ignores switch-outs outside a call (tm_sys even). The event costs ~17 us per switch-out here
 * (a self-IPI in this VM), so it is disabled while the runner parks on purpose (sa_release) and
 * on every activation that is not a runner.
 */
#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
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

int ks_upcall_available(const char **why)
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

/* Make `runner` watched for VP `vp`: its own event, routed to the VP's standby. */
int ks_upcall_arm(struct ks_vp *vp, struct ks_act *runner)
{
	if (ks_upcall_available(NULL) != 1)
		return -1;
	if (runner->ks_perf_fd < 0 && (runner->ks_perf_fd = open_event(runner->ks_tid)) < 0)
		return -1;
	struct ks_act *sb = vp->ks_standby;
	if (!sb || sb == runner) {
		sb = ks_act_get();
		if (!sb)
			return -1;
		vp->ks_standby = sb;
		__atomic_fetch_add(&vp->ks_refs, 1, __ATOMIC_RELAXED); /* the standby's */
		ks_act_give(sb, KS_TASK_STANDBY, vp);
	}
	if (route(runner->ks_perf_fd, sb->ks_tid) < 0)
		return -1;
	ioctl(runner->ks_perf_fd, PERF_EVENT_IOC_ENABLE, 0);
	return 0;
}

void ks_upcall_disarm(struct ks_act *act)
{
	if (act->ks_perf_fd >= 0)
		ioctl(act->ks_perf_fd, PERF_EVENT_IOC_DISABLE, 0);
}

/* Close the event of an activation that stops being a runner: with thousands of calls in
 * the background, one descriptor each would exhaust the process's descriptor table. */
void ks_upcall_release(struct ks_act *act)
{
	int fd = act->ks_perf_fd;
	if (fd < 0)
		return;
	act->ks_perf_fd = -1;
	close(fd);
}

/* The event could not be set up (no descriptor left, no memory): the VP must not go
 * unwatched, so the watchdog takes it over. */
void ks_upcall_fallback(struct ks_vp *vp)
{
	__atomic_store_n(&vp->ks_wd_fallback, 1, __ATOMIC_RELEASE);
	ks_watchdog_start();
}

void ks_upcall_park(struct ks_act *act, bool parking)
{
	if (act->ks_perf_fd < 0 || !act->ks_vp || act->ks_vp->ks_standby == NULL)
		return;
	ioctl(act->ks_perf_fd, parking ? PERF_EVENT_IOC_DISABLE : PERF_EVENT_IOC_ENABLE, 0);
}

/* Is thread `tid` asleep in the kernel ('S' or 'D'), rather than runnable (preempted)? */
static bool asleep(pid_t tid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return true;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return true;
	buf[n] = 0;
	char *p = buf + n;
	while (p > buf && *p != ')')
		p--;
	return !(p[1] == ' ' && p[2] == 'R');
}

void ks_standby_loop(struct ks_act *act, struct ks_vp *vp)
{
	sigset_t set;
	siginfo_t si;
	sigemptyset(&set);
	sigaddset(&set, KS_SIG_UPCALL);
	act->ks_role = KS_STANDBY;
	/* Notices queued for an earlier role are not drained blindly: the runner may already have
	   blocked, and its notice may be among them. Every notice is judged by the VP's state. */
	for (;;) {
		if (sigwaitinfo(&set, &si) < 0)
			continue;
		if (vp->ks_standby != act || vp->ks_dead) {
			__atomic_fetch_sub(&vp->ks_refs, 1, __ATOMIC_RELEASE); /* last touch of vp */
			return;
		}
		struct ks_act *runner = vp->ks_runner;
		struct sa_thr_mailbox *m = __atomic_load_n(&vp->ks_mbox->sa_curthread, __ATOMIC_ACQUIRE);
		if (!m || si.si_fd != runner->ks_perf_fd)
			continue;
		uint64_t s = __atomic_load_n(&m->tm_sys, __ATOMIC_ACQUIRE);
		if (!(s & 1) || !asleep(runner->ks_tid))
			continue; /* not in a call, or only preempted */
		act->ks_vp = vp;
		ks_claim(act, vp, m, s, SA_DETECT_UPCALL); /* does not return if it wins */
	}
}
