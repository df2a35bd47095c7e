/* test_handles.c - the handle of a background call: laio_syscall_r() gives it through an
 * argument, so that a signal handler's own laio_syscall() cannot change it; laio_gethandle()
 * keeps the paper's form; laio_in_flight() tells whether a handle still names a call. */
#include <signal.h>
#include <sys/time.h>
#include "test-util.h"

/* ---- a handler that calls laio_syscall() between a call and the program's look ---- */

static volatile sig_atomic_t handler_runs;
static void *handler_handles[1 << 16];
static volatile sig_atomic_t handler_n;

static void calls_laio(int sig)
{
	(void)sig;
	int e = errno;
	void *h = NULL;
	if (laio_syscall_r(&h, SYS_getpid) == -1 && errno == EINPROGRESS &&
	    handler_n < (int)(sizeof handler_handles / sizeof handler_handles[0]))
		handler_handles[handler_n++] = h;
	handler_runs++;
	errno = e;
}

/* The handler, for the LAIO thread only: the interval timer's SIGALRM is the process's, and
 * the test's main thread (no LAIO state: a handler must not set one up) blocks it. */
static void install(void (*fn)(int))
{
	struct sigaction sa = { 0 };
	sigset_t alrm;
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	cr_assert_eq(pthread_sigmask(SIG_BLOCK, &alrm, NULL), 0);
	sa.sa_handler = fn;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	cr_assert_eq(sigaction(SIGALRM, &sa, NULL), 0);
}

static void uninstall(void)
{
	sigset_t alrm;
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	signal(SIGALRM, SIG_IGN); /* one still pending for the process goes nowhere */
	pthread_sigmask(SIG_UNBLOCK, &alrm, NULL);
	signal(SIGALRM, SIG_DFL);
}

/* In the LAIO thread: open SIGALRM, after a few background calls have left spare kernel threads
 * in the pool (a handler's background call then takes one and creates none: creating one
 * allocates, which a handler must not do). */
static void take_alarms(void)
{
	struct laio_completion c[8];
	int bg = 0;
	for (int i = 0; i < 8; i++)
		bg += laio_syscall(SYS_getpid) == -1 && errno == EINPROGRESS;
	if (bg)
		poll_n(c, bg, 10);
	sigset_t alrm;
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	pthread_sigmask(SIG_UNBLOCK, &alrm, NULL);
}

static bool from_handler(void *h)
{
	for (int i = 0; i < handler_n; i++)
		if (handler_handles[i] == h)
			return true;
	return false;
}

/* The hazard, made certain: the handler runs right after the call returned EINPROGRESS. */
static void raised_body(void *arg)
{
	(void)arg;
	take_alarms();
	handler_n = 0;
	void *h = (void *)1;
	long r = laio_syscall_r(&h, SYS_getpid); /* eager: every call goes to the background */
	EXPECT(r == -1 && errno == EINPROGRESS, "getpid under eager: %ld", r);
	void *first = laio_gethandle();
	EXPECT(h && h == first, "laio_syscall_r and laio_gethandle agree: %p %p", h, first);
	raise(SIGALRM);
	EXPECT(handler_n == 1, "the handler's own call went to the background");
	cr_expect_neq(laio_gethandle(), first, "laio_gethandle() names the handler's call now "
		      "(the documented hazard)");
	cr_expect_eq(h, first, "the handle laio_syscall_r() gave is still the call's");
	struct laio_completion c[2];
	EXPECT(poll_n(c, 2, 10) == 2, "both calls complete");
	cr_expect((c[0].laio_handle == first && c[1].laio_handle == handler_handles[0]) ||
		  (c[1].laio_handle == first && c[0].laio_handle == handler_handles[0]),
		  "the completions are for the two handles");
}

Test(handles, handler_between_call_and_gethandle)
{
	install(calls_laio);
	int r = with_detector(LAIO_DETECT_EAGER, raised_body, NULL);
	uninstall();
	if (r < 0)
		cr_skip_test("eager is not available");
}

/* The race itself, with a 200 us interval timer whose handler calls laio_syscall(): every
 * EINPROGRESS of laio_syscall_r() has a handle, and that handle's completion comes. */
struct race {
	long calls, background, gethandle_differs, bad;
};

static void race_body(void *arg)
{
	struct race *rc = arg;
	double end = now_s() + 1.0 * (double)slow_factor();
	struct itimerval it = { { 0, 200 }, { 0, 200 } };
	take_alarms();
	handler_n = 0;
	setitimer(ITIMER_REAL, &it, NULL);
	while (now_s() < end && handler_n < 60000) {
		void *h = NULL;
		long r = laio_syscall_r(&h, SYS_getpid);
		rc->calls++;
		if (r != -1 || errno != EINPROGRESS) {
			if (r != getpid() || h != NULL)
				rc->bad++;
			continue;
		}
		rc->background++;
		if (laio_gethandle() != h)
			rc->gethandle_differs++;
		if (!h) {
			rc->bad++;
			continue;
		}
		/* its completion, and any of the handler's calls meanwhile */
		bool seen = false;
		double limit = now_s() + 10;
		while (!seen && now_s() < limit) {
			struct laio_completion c;
			struct timespec ts = { 0, 10 * 1000 * 1000 };
			if (laio_poll(&c, 1, &ts) != 1)
				continue;
			if (c.laio_handle == h)
				seen = true;
			else if (!from_handler(c.laio_handle))
				rc->bad++;
		}
		if (!seen)
			rc->bad++;
	}
	struct itimerval off = { { 0, 0 }, { 0, 0 } };
	setitimer(ITIMER_REAL, &off, NULL);
	struct laio_completion c[64];
	struct laio_stats st;
	laio_stats(&st);
	if (st.in_flight)
		poll_n(c, (int)st.in_flight, 10);
}

Test(handles, handle_through_argument_under_signals, .timeout = 60)
{
	/* getpid never blocks: eager moves every call, auto runs them here */
	static const enum laio_detector dets[] = { LAIO_DETECT_EAGER, LAIO_DETECT_AUTO };
	for (size_t k = 0; k < sizeof dets / sizeof dets[0]; k++) {
		enum laio_detector d = dets[k];
		struct race rc = { 0 };
		handler_runs = 0;
		install(calls_laio);
		int r = with_detector(d, race_body, &rc);
		uninstall();
		if (r < 0)
			continue;
		cr_log_info("[%s] %ld calls, %ld in the background, %ld handler runs; "
			    "laio_gethandle() named another call %ld times", det_names[d], rc.calls,
			    rc.background, (long)handler_runs, rc.gethandle_differs);
		cr_expect_eq(rc.bad, 0, "[%s] %ld calls without their handle or completion",
			     det_names[d], rc.bad);
	}
}

Test(handles, null_handle_pointer_is_laio_syscall)
{
	long r = laio_syscall_r(NULL, SYS_getpid);
	cr_expect_eq(r, getpid());
	void *h = (void *)1;
	r = laio_syscall_r(&h, SYS_getppid);
	cr_expect(r == getppid() && h == NULL, "a call that did not block: NULL handle");
	errno = 0;
	r = laio_syscall_r(&h, 99999);
	cr_expect(r == -1 && errno == ENOSYS && h == NULL, "ENOSYS as syscall()");
}

/* ---- laio_in_flight() ---- */

static void in_flight_body(void *arg)
{
	(void)arg;
	int p[2];
	char b;
	make_pipe(p);
	void *h = NULL;
	long r = laio_syscall_r(&h, SYS_read, p[0], &b, 1);
	EXPECT(r == -1 && errno == EINPROGRESS, "read of an empty pipe: %ld", r);
	cr_expect_eq(laio_in_flight(h), 1, "running");
	EXPECT(write(p[1], "x", 1) == 1, "write");
	usleep(20 * 1000);
	cr_expect_eq(laio_in_flight(h), 1, "finished, not reported yet: still the call's");
	struct laio_completion c;
	EXPECT(poll_n(&c, 1, 10) == 1 && c.laio_handle == h, "its completion");
	cr_expect_eq(laio_in_flight(h), 0, "reported: the handle names no call");
	errno = 0;
	cr_expect(laio_in_flight((char *)h + 1) == -1 && errno == EINVAL, "inside a handle");
	errno = 0;
	cr_expect(laio_in_flight(&b) == -1 && errno == EINVAL, "not a handle");
	errno = 0;
	cr_expect(laio_in_flight(NULL) == -1 && errno == EINVAL, "NULL");
	close(p[0]);
	close(p[1]);
}

Test(handles, in_flight_until_reported)
{
	for (int d = 0; d < LAIO_DETECT_COUNT; d++)
		with_detector(d, in_flight_body, NULL);
}
