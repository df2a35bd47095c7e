/* test_idle.c - the idle detector (kernel-shim/idle.c) and the identity rules around a handoff:
 * the standby follows its runner's CPU, sleeps when nothing is in progress, never lets user
 * code run at idle priority; the thread group leader never exits; a signal handler may call
 * laio_syscall() while the thread is inside it. */
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <sched.h>
#include <signal.h>
#include "test-util.h"
#include "sa.h"

static void need_idle(void)
{
	const char *why;
	if (!sa_detector_available(SA_DETECT_IDLE, &why))
		cr_skip_test("the idle detector cannot work here: %s", why);
}

static void pin_self(int cpu)
{
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	cr_expect_eq(sched_setaffinity(0, sizeof s, &s), 0);
}

/* One read of an empty pipe that a helper fills 20 ms later: must go to the background. */
struct later { int fd; };
static void *write_later(void *p)
{
	struct later *l = p;
	usleep(20000);
	cr_expect_eq(write(l->fd, "x", 1), 1);
	return NULL;
}

static int blocking_read(int p[2])
{
	char c;
	pthread_t t;
	struct later l = { p[1] };
	sigset_t all, old;
	sigfillset(&all); /* the helper takes no signal: SIGALRM is for the thread under test */
	pthread_sigmask(SIG_BLOCK, &all, &old);
	pthread_create(&t, NULL, write_later, &l);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	long r = laio_syscall(SYS_read, p[0], &c, 1);
	int e = errno;
	struct laio_completion done;
	int bg = r == -1 && e == EINPROGRESS;
	if (bg) {
		cr_expect_eq(poll_n(&done, 1, 10), 1);
		cr_expect_eq(done.laio_return_value, 1, "background read: %ld %s",
			     done.laio_return_value, strerror(done.laio_errno));
	} else {
		cr_expect_eq(r, 1, "read: %ld %s", r, strerror(e));
	}
	pthread_join(t, NULL);
	return bg;
}

/* User code never runs at idle priority, and the standby finds its runner on every CPU. */
static void follows_body(void *arg)
{
	(void)arg;
	int p[2];
	make_pipe(p);
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	struct sa_counters c0, c1;
	sa_counters(&c0);
	int bg = 0, n = 0;
	for (int round = 0; round < 2; round++)
		for (int cpu = 0; cpu < ncpu && cpu < 4; cpu++) {
			pin_self(cpu);
			bg += blocking_read(p);
			n++;
			EXPECT(sched_getscheduler(0) == SCHED_OTHER,
			       "after a handoff on CPU %d the flow runs at policy %d", cpu,
			       sched_getscheduler(0));
		}
	sa_counters(&c1);
	cr_log_info("idle: %d of %d blocking reads went to the background across %ld CPUs, "
		    "%lu kicks", bg, n, ncpu, c1.idle_kicks - c0.idle_kicks);
	cr_expect_eq(bg, n, "every blocked read is noticed, on every CPU the runner moves to");
	if (ncpu > 1)
		cr_expect_gt(c1.idle_kicks, c0.idle_kicks, "the trap moved the standby");
	struct laio_stats st;
	laio_stats(&st);
	cr_expect_eq(st.handoffs[LAIO_DETECT_IDLE], (unsigned long)bg, "hand-offs counted per detector");
	close(p[0]);
	close(p[1]);
}

Test(idle, standby_follows_the_runner_and_user_code_stays_normal)
{
	need_idle();
	with_detector(LAIO_DETECT_IDLE, follows_body, NULL);
}

/* A process that used LAIO and then does nothing costs (nearly) no CPU: the standby sleeps. */
static double cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static void quiet_body(void *arg)
{
	(void)arg;
	int p[2];
	make_pipe(p);
	blocking_read(p);
	for (int i = 0; i < 1000; i++) /* calls that do not block: the standby is awake */
		EXPECT(laio_syscall(SYS_getppid) == getppid(), "getppid");
	usleep(50000);
	double c0 = cpu_seconds(), t0 = now_s();
	usleep(500000); /* outside LAIO: the runner sleeps, its CPU is idle */
	double used = cpu_seconds() - c0, wall = now_s() - t0;
	cr_log_info("idle: a quiet process used %.1f ms of CPU in %.0f ms", used * 1e3, wall * 1e3);
	cr_expect_lt(used, wall * 0.2, "the standby must sleep, not spin: %.3f s of CPU in %.3f s",
		     used, wall);
	/* and wakes up again: the next blocking call is noticed */
	cr_expect(blocking_read(p), "a block after a quiet time is noticed");
	close(p[0]);
	close(p[1]);
}

Test(idle, quiet_process_costs_no_cpu)
{
	need_idle();
	with_detector(LAIO_DETECT_IDLE, quiet_body, NULL);
}

/* Unprivileged (nobody): the standby cannot leave SCHED_IDLE, so a normal spare claims. */
Test(idle, works_unprivileged)
{
	need_idle();
	SKIP_FORK_UNDER_TSAN();
	if (geteuid() != 0)
		cr_skip_test("not root: cannot become nobody to compare (this run is unprivileged)");
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		if (setgid(65534) != 0 || setuid(65534) != 0)
			_exit(3);
		struct laio_config c = { .detector = LAIO_DETECT_IDLE };
		if (laio_init(&c) != 0)
			_exit(4);
		int p[2];
		if (pipe(p) != 0)
			_exit(5);
		int bg = 0;
		for (int i = 0; i < 5; i++) {
			bg += blocking_read(p);
			if (sched_getscheduler(0) != SCHED_OTHER)
				_exit(6);
		}
		_exit(bg == 5 ? 0 : 7);
	}
	int st;
	waitpid(pid, &st, 0);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) != 3, "could not become nobody");
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		  "as nobody: status %d (4 init, 6 user code at idle priority, 7 a block missed)",
		  WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

/* The thread group leader never exits while the process lives, whichever flows it ran. */
static void *short_lived(void *arg)
{
	int *p = arg;
	blocking_read(p);
	return NULL;
}

static char leader_state(void)
{
	char path[64], buf[4096];
	snprintf(path, sizeof path, "/proc/self/task/%d/status", (int)getpid());
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return '?';
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	char *s = strstr(buf, "State:");
	return s ? s[7] : '?';
}

Test(idle, leader_survives_thread_churn)
{
	/* every lazy detector that works here, in turn, in this process (its leader) */
	int ds[] = { LAIO_DETECT_AUTO, LAIO_DETECT_IDLE, LAIO_DETECT_WATCHDOG, LAIO_DETECT_UPCALL };
	int p[2];
	make_pipe(p);
	for (size_t k = 0; k < sizeof ds / sizeof ds[0]; k++) {
		if (!sa_detector_available(ds[k], NULL))
			continue;
		setenv("LAIO_DETECTOR", det_names[ds[k]], 1);
		if (k == 0)
			for (int i = 0; i < 3; i++)
				blocking_read(p); /* the main thread's calls go to the background */
		for (int i = 0; i < 6; i++) {
			pthread_t t;
			pthread_create(&t, NULL, short_lived, p);
			pthread_join(t, NULL);
		}
		char st = leader_state();
		char exe[256];
		ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
		cr_expect(st != 'Z' && st != '?', "[%s] the leader thread is in state %c",
			  det_names[ds[k]], st);
		cr_expect_gt(n, 0, "[%s] readlink(/proc/self/exe) fails: %s", det_names[ds[k]],
			     strerror(errno));
	}
	close(p[0]);
	close(p[1]);
}

/* laio_syscall() from a signal handler that interrupted laio_syscall() or laio_poll() of the
 * same thread runs synchronously, exactly as syscall() would; nothing is corrupted. */
static long handler_bad, handler_calls; /* atomics: the handler may run on any thread */
static int handler_pipe[2];

static void on_alarm(int sig)
{
	(void)sig;
	int saved = errno;
	char c;
	long r = laio_syscall(SYS_getppid);
	if (r != getppid())
		__atomic_fetch_add(&handler_bad, 1, __ATOMIC_RELAXED);
	/* a call that would block: from the handler it must not go to the background */
	r = laio_syscall(SYS_read, handler_pipe[0], &c, 0);
	if (r != 0)
		__atomic_fetch_add(&handler_bad, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&handler_calls, 1, __ATOMIC_RELAXED);
	errno = saved;
}

static void reentry_body(void *arg)
{
	/* Background calls only where the call moves (probe, eager): under the lazy detectors the
	   blocked kernel thread keeps the user's mask and TLS until its call returns, and a
	   process-directed SIGALRM could run the handler there (docs/design.md, "Signals"). */
	bool moves = *(int *)arg == LAIO_DETECT_PROBE || *(int *)arg == LAIO_DETECT_EAGER;
	int p[2];
	make_pipe(p);
	make_pipe(handler_pipe);
	struct sigaction sa = { 0 };
	sa.sa_handler = on_alarm;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGALRM, &sa, NULL);
	sigset_t alrm;
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	pthread_sigmask(SIG_UNBLOCK, &alrm, NULL);
	struct itimerval it = { { 0, 200 }, { 0, 200 } };
	setitimer(ITIMER_REAL, &it, NULL);
	double end = now_s() + 1.0;
	long good = 0, bad = 0, handoffs = 0;
	while (now_s() < end) {
		if (!moves) {
			/* under the lazy detectors the loop stays out of the trap: a handler that
			   interrupts a call in its trap and then blocks would be taken for the call
			   (docs/design.md, "Signals"); here it interrupts laio_poll() and user code */
			struct timespec zero = { 0, 0 };
			struct laio_completion c;
			if (laio_poll(&c, 1, &zero) != 0)
				bad++;
			good++;
			continue;
		}
		long r = laio_syscall(SYS_getpid);
		if (r == -1 && errno == EINPROGRESS) {
			/* allowed (a lazy detector may hand off a call preempted in its trap, here
			   by the handler itself): its completion must be right */
			struct laio_completion c;
			r = poll_n(&c, 1, 10) == 1 ? c.laio_return_value : -1;
			handoffs++;
		}
		if (r == getpid())
			good++;
		else
			bad++;
		if (moves && good % 50 == 0)
			blocking_read(p);
	}
	struct itimerval off = { { 0, 0 }, { 0, 0 } };
	pthread_sigmask(SIG_BLOCK, &alrm, NULL);
	setitimer(ITIMER_REAL, &off, NULL);
	signal(SIGALRM, SIG_IGN); /* drops one still pending */
	cr_log_info("reentry [%s]: %ld calls (%ld wrong, %ld handed off), %ld handler runs "
		    "(%ld wrong)", det_names[*(int *)arg], good, bad, handoffs, (long)handler_calls,
		    (long)handler_bad);
	cr_expect_eq(bad, 0, "wrong results outside the handler");
	cr_expect_eq(handler_bad, 0, "wrong results inside the handler");
	close(p[0]);
	close(p[1]);
	close(handler_pipe[0]);
	close(handler_pipe[1]);
}

Test(idle, laio_syscall_from_a_signal_handler)
{
	/* the process-directed SIGALRM must reach only the thread under test (which unblocks it) */
	sigset_t alrm;
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &alrm, NULL);
	for (int d = 0; d < LAIO_DETECT_COUNT; d++) {
		if (d == LAIO_DETECT_EAGER)
			continue; /* every call goes to the background: nothing to compare in place */
		handler_bad = 0;
		handler_calls = 0;
		if (with_detector(d, reentry_body, &d) < 0)
			continue;
	}
}
