/* test_laio.c - every sentence of laio.h's contract, under every detector that works here. */
#include <sys/socket.h>
#include <sys/eventfd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include "test-util.h"
#include "sa.h"

static __thread int tls_canary = 12345;

/* ---- calls that do not block: exactly syscall() ---- */

struct same_case {
	long nr;
	long a[3];
};

static void nonblocking_body(void *arg)
{
	(void)arg;
	int p[2], q[2];
	char c = 0;
	make_pipe(p);
	make_pipe(q);
	EXPECT(write(p[1], "ab", 2) == 2, "fill");
	struct same_case cases[] = {
		{ SYS_getpid, { 0 } },
		{ SYS_getppid, { 0 } },
		{ SYS_close, { -1 } },                        /* EBADF */
		{ SYS_read, { 12345, (long)&c, 1 } },         /* EBADF */
		{ SYS_read, { p[0], 0, 1 } },                 /* EFAULT from the kernel */
		{ SYS_read, { p[0], (long)&c, 1 } },          /* data present */
		{ SYS_write, { q[1], (long)"z", 1 } },
		{ SYS_lseek, { p[0], 0, SEEK_SET } },         /* ESPIPE */
		{ 999, { 0 } },                               /* ENOSYS */
		{ -1, { 0 } },                                /* ENOSYS */
		{ SYS_fcntl, { p[0], F_GETFD, 0 } },
		{ SYS_dup, { -5 } },                          /* EBADF */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct same_case *k = &cases[i];
		errno = 0;
		long want = syscall(k->nr, k->a[0], k->a[1], k->a[2]);
		int want_errno = errno;
		if (k->nr == SYS_read && k->a[0] == p[0] && k->a[1])
			EXPECT(write(p[1], "c", 1) == 1, "refill");
		errno = 0;
		long got = laio_syscall(k->nr, k->a[0], k->a[1], k->a[2]);
		int got_errno = errno;
		if (k->nr == SYS_write)
			EXPECT(read(q[0], &c, 1) == 1, "drain");
		EXPECT(got == want && got_errno == want_errno,
		       "call %ld: laio_syscall %ld/%d, syscall %ld/%d", k->nr, got, got_errno, want,
		       want_errno);
		EXPECT(laio_gethandle() == NULL, "a call that did not block has no handle");
	}
	close(p[0]); close(p[1]); close(q[0]); close(q[1]);
}

static void all_detectors(void (*fn)(void *), void *arg, bool lazy_only)
{
	for (int d = 0; d < LAIO_DETECT_COUNT; d++) {
		if (lazy_only && d == LAIO_DETECT_EAGER)
			continue;
		with_detector(d, fn, arg);
	}
}

Test(laio, nonblocking_is_syscall)
{
	all_detectors(nonblocking_body, NULL, true);
}

/* ---- a call that blocks ---- */

static void nanosleep_body(void *arg)
{
	(void)arg;
	long k = slow_factor();
	struct timespec ts = { k / 5, (k % 5) * 200 * 1000 * 1000 }; /* 0.2 s, or 1 s sanitized */
	double t0 = now_s();
	long r = laio_syscall(SYS_nanosleep, &ts, NULL);
	int e = errno;
	double dt = now_s() - t0;
	if (strcmp(laio_detector_name(SYS_nanosleep), "none") == 0) {
		EXPECT(r == 0, "no detector for nanosleep: it runs synchronously");
		return;
	}
	EXPECT(r == -1 && e == EINPROGRESS, "nanosleep: %ld %s", r, strerror(e));
	EXPECT(dt < 0.15 * (double)k, "EINPROGRESS must come at once, took %.3f s", dt);
	void *h = laio_gethandle();
	EXPECT(h != NULL, "handle of the background call");
	struct laio_completion c[2];
	EXPECT(poll_n(c, 1, 5) == 1, "one completion");
	EXPECT(c[0].laio_handle == h && c[0].laio_return_value == 0 && c[0].laio_errno == 0,
	       "completion %p %ld %d", c[0].laio_handle, c[0].laio_return_value, c[0].laio_errno);
	struct timespec zero = { 0, 0 };
	EXPECT(laio_poll(c, 2, &zero) == 0, "reported exactly once");
	EXPECT(now_s() - t0 >= 0.19 * (double)k, "the sleep really ran");
}

Test(laio, nanosleep_goes_background)
{
	all_detectors(nanosleep_body, NULL, false);
}

static void empty_pipe_body(void *arg)
{
	(void)arg;
	int p[2];
	char c = 0;
	make_pipe(p);
	long r = laio_syscall(SYS_read, p[0], &c, 1);
	EXPECT(r == -1 && errno == EINPROGRESS, "read of an empty pipe: %ld %s", r, strerror(errno));
	void *h = laio_gethandle();
	EXPECT(h, "handle");
	EXPECT(write(p[1], "Q", 1) == 1, "write");
	struct laio_completion cp;
	EXPECT(poll_n(&cp, 1, 5) == 1, "completion");
	EXPECT(cp.laio_handle == h && cp.laio_return_value == 1 && c == 'Q',
	       "read completed with %ld, byte %c", cp.laio_return_value, c);
	struct laio_stats st;
	laio_stats(&st);
	EXPECT(st.blocked >= 1 && st.completed >= 1 && st.in_flight == 0, "stats");
	close(p[0]);
	close(p[1]);
}

Test(laio, empty_pipe_read_completes)
{
	all_detectors(empty_pipe_body, NULL, false);
}

/* The paper's Figure 2: client_write() to a full pipe; the loop drains it, the write completes. */
static void client_write_body(void *arg)
{
	(void)arg;
	int p[2];
	make_pipe(p);
	fcntl(p[1], F_SETPIPE_SZ, 4096);
	int cap = fcntl(p[1], F_GETPIPE_SZ);
	char *fill = calloc(1, (size_t)cap);
	EXPECT(write(p[1], fill, (size_t)cap) == cap, "fill the pipe");
	static char msg[100];
	long r = laio_syscall(SYS_write, p[1], msg, sizeof msg);
	if (strcmp(laio_detector_name(SYS_write), "none") == 0) {
		EXPECT(0 || r == -1 || r > 0, "unreachable");
		free(fill);
		return;
	}
	EXPECT(r == -1 && errno == EINPROGRESS, "write to a full pipe: %ld %s", r, strerror(errno));
	void *h = laio_gethandle();
	char buf[8192];
	EXPECT(read(p[0], buf, sizeof buf) > 0, "the event loop drains the pipe");
	struct laio_completion cp;
	EXPECT(poll_n(&cp, 1, 5) == 1, "completion");
	EXPECT(cp.laio_handle == h && cp.laio_return_value == (long)sizeof msg,
	       "client_write_complete(%ld)", cp.laio_return_value);
	free(fill);
	close(p[0]);
	close(p[1]);
}

Test(laio, client_write_figure2)
{
	for (int d = 0; d < LAIO_DETECT_COUNT; d++)
		if (d != LAIO_DETECT_PROBE) /* writes have no probe: they run synchronously there */
			with_detector(d, client_write_body, NULL);
}

/* A background call that fails reports its errno: a receive reset by the peer. */
static void failing_body(void *arg)
{
	(void)arg;
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof a;
	EXPECT(bind(ls, (void *)&a, sizeof a) == 0 && listen(ls, 1) == 0, "listen");
	getsockname(ls, (void *)&a, &al);
	int cs = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	EXPECT(connect(cs, (void *)&a, sizeof a) == 0, "connect");
	int ss = accept(ls, NULL, NULL);
	char buf[16];
	long r = laio_syscall(SYS_recvfrom, cs, buf, sizeof buf, 0, 0, 0);
	EXPECT(r == -1 && errno == EINPROGRESS, "recv on an idle socket: %ld %s", r, strerror(errno));
	struct linger lg = { 1, 0 };
	setsockopt(ss, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	close(ss); /* RST */
	struct laio_completion cp;
	EXPECT(poll_n(&cp, 1, 5) == 1, "completion");
	EXPECT(cp.laio_return_value == -1 && cp.laio_errno == ECONNRESET,
	       "reset: %ld errno %d", cp.laio_return_value, cp.laio_errno);
	close(cs);
	close(ls);
}

Test(laio, background_failure_reports_errno)
{
	all_detectors(failing_body, NULL, false);
}

/* 64 background calls at once: each completes exactly once, and they run concurrently. */
static void many_body(void *arg)
{
	(void)arg;
	enum { N = 64 };
	void *handles[N];
	struct timespec ts[N];
	double t0 = now_s();
	for (int i = 0; i < N; i++) {
		ts[i] = (struct timespec){ 0, (100 + i) * 1000 * 1000L };
		long r = laio_syscall(SYS_nanosleep, &ts[i], NULL);
		EXPECT(r == -1 && errno == EINPROGRESS, "call %d: %ld %s", i, r, strerror(errno));
		handles[i] = laio_gethandle();
		for (int j = 0; j < i; j++)
			EXPECT(handles[j] != handles[i], "handles in flight are distinct");
	}
	struct laio_completion c[N + 1];
	int got = poll_n(c, N, 10);
	double dt = now_s() - t0;
	EXPECT(got == N, "got %d of %d", got, N);
	int seen[N] = { 0 };
	for (int i = 0; i < N; i++) {
		int k = -1;
		for (int j = 0; j < N; j++)
			if (handles[j] == c[i].laio_handle)
				k = j;
		EXPECT(k >= 0 && !seen[k]++ && c[i].laio_return_value == 0, "completion %d", i);
	}
	struct timespec zero = { 0, 0 };
	EXPECT(laio_poll(c, N + 1, &zero) == 0, "nothing more");
	EXPECT(dt < 0.163 * 8, "concurrent: %.3f s for 64 sleeps of <= 163 ms", dt);
	cr_log_info("64 sleeps of 100-163 ms in flight at once: %.3f s", dt);
}

Test(laio, sixty_four_concurrent)
{
	with_detector(LAIO_DETECT_AUTO, many_body, NULL);
	with_detector(LAIO_DETECT_EAGER, many_body, NULL);
}

/* 64-bit return values: lseek past 4 GiB, directly and as a background call (eager). */
static void lseek_body(void *arg)
{
	(void)arg;
	char path[] = "/tmp/laio-lseek-XXXXXX";
	int fd = mkstemp(path);
	unlink(path);
	long off = 5L << 30;
	long r = laio_syscall(SYS_lseek, fd, off, SEEK_SET);
	if (r == -1 && errno == EINPROGRESS) {
		struct laio_completion cp;
		EXPECT(poll_n(&cp, 1, 5) == 1, "completion");
		r = cp.laio_return_value;
	}
	EXPECT(r == off, "lseek returned %ld, want %ld", r, off);
	close(fd);
}

Test(laio, return_value_is_64_bit)
{
	with_detector(LAIO_DETECT_AUTO, lseek_body, NULL);
	with_detector(LAIO_DETECT_EAGER, lseek_body, NULL);
}

/* Identity after a handoff: errno, __thread variables and pthread_self() are unchanged. */
static void identity_body(void *arg)
{
	(void)arg;
	pthread_t me = pthread_self();
	int *where = &tls_canary;
	tls_canary = 777;
	sigset_t usr1, now;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL); /* a change made after the thread's first call */
	struct timespec ts = { 0, 100 * 1000 * 1000 };
	long r = laio_syscall(SYS_nanosleep, &ts, NULL);
	EXPECT(r == -1 && errno == EINPROGRESS, "blocked: %ld under %s", r, laio_detector_name(SYS_nanosleep));
	pthread_sigmask(SIG_SETMASK, NULL, &now);
	EXPECT(sigismember(&now, SIGUSR1), "the signal mask follows the user context");
	pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);
	EXPECT(pthread_equal(me, pthread_self()), "pthread_self() unchanged");
	EXPECT(&tls_canary == where && tls_canary == 777, "__thread variable unchanged");
	errno = 0;
	EXPECT(close(-1) == -1 && errno == EBADF, "errno still works");
	char buf[64];
	snprintf(buf, sizeof buf, "%d", 42); /* stdio and locale */
	EXPECT(strcmp(buf, "42") == 0, "stdio");
	struct laio_completion cp;
	EXPECT(poll_n(&cp, 1, 5) == 1, "completion");
	EXPECT(tls_canary == 777 && pthread_equal(me, pthread_self()), "still the same after poll");
}

Test(laio, identity_follows_the_user_context)
{
	with_detector(LAIO_DETECT_UPCALL, identity_body, NULL);
	with_detector(LAIO_DETECT_WATCHDOG, identity_body, NULL);
	with_detector(LAIO_DETECT_EAGER, identity_body, NULL);
}

/* Per-thread completions: four threads, each sees only its own. */
static void *per_thread(void *arg)
{
	long id = (long)arg;
	void *mine[8];
	int nbg = 0;
	/* under a sanitizer a detector may be slower than a sleep: then the call simply completes
	   synchronously, which is correct; without one every sleep must go to the background */
	bool slow = getenv("LAIO_SANITIZED") != NULL;
	for (int i = 0; i < 8; i++) {
		struct timespec ts = { 0, (20 + 5 * i + (long)id) * 1000 * 1000L };
		long r = laio_syscall(SYS_nanosleep, &ts, NULL);
		if (r == 0 && slow)
			continue;
		cr_expect(r == -1 && errno == EINPROGRESS, "thread %ld call %d", id, i);
		mine[nbg++] = laio_gethandle();
	}
	struct laio_completion c[8];
	int got = poll_n(c, nbg, 10);
	cr_expect_eq(got, nbg, "thread %ld got %d of %d", id, got, nbg);
	for (int i = 0; i < got; i++) {
		bool ok = false;
		for (int j = 0; j < nbg; j++)
			ok |= c[i].laio_handle == mine[j];
		cr_expect(ok, "thread %ld got a completion that is not its own", id);
	}
	return NULL;
}

Test(laio, per_thread_completions)
{
	pthread_t t[4];
	for (long i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, per_thread, (void *)i);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
}

/* laio_fd() is readable exactly while completions wait. */
static bool readable(int fd)
{
	struct pollfd p = { fd, POLLIN, 0 };
	return poll(&p, 1, 0) == 1;
}

static void fd_body(void *arg)
{
	(void)arg;
	int fd = laio_fd();
	EXPECT(fd >= 0, "laio_fd");
	EXPECT(laio_fd() == fd, "one descriptor per thread");
	EXPECT(!readable(fd), "nothing waits yet");
	int p[2], q[2];
	char b1, b2;
	make_pipe(p);
	make_pipe(q);
	/* reads of empty pipes: they run until this thread writes, however slow the machine */
	EXPECT(laio_syscall(SYS_read, p[0], &b1, 1) == -1 && errno == EINPROGRESS, "bg 1");
	EXPECT(laio_syscall(SYS_read, q[0], &b2, 1) == -1 && errno == EINPROGRESS, "bg 2");
	EXPECT(!readable(fd), "not readable while the calls run");
	EXPECT(write(p[1], "a", 1) == 1 && write(q[1], "b", 1) == 1, "feed both");
	struct pollfd pf = { fd, POLLIN, 0 };
	EXPECT(poll(&pf, 1, 5000) == 1, "readable once a call completes");
	/* both bytes taken: the second completion is on its way; give it ample time to land */
	int left = 1;
	for (int i = 0; i < 5000 && left; i++) {
		int a = 0, b = 0;
		ioctl(p[0], FIONREAD, &a);
		ioctl(q[0], FIONREAD, &b);
		left = a + b;
		if (left)
			usleep(1000);
	}
	usleep((useconds_t)(100 * 1000 * slow_factor()));
	struct laio_completion c;
	EXPECT(laio_poll(&c, 1, NULL) == 1, "first");
	EXPECT(readable(fd), "still readable: one more waits");
	EXPECT(laio_poll(&c, 1, NULL) == 1, "second");
	EXPECT(!readable(fd), "not readable once drained");
	close(p[0]);
	close(p[1]);
	close(q[0]);
	close(q[1]);
}

Test(laio, laio_fd_readable_while_completions_wait)
{
	with_detector(LAIO_DETECT_AUTO, fd_body, NULL);
}

/* laio_cancel(): EINTR for a running call, ENOENT when finished, EINVAL for a non-handle. */
struct xthread_handle {
	void *h;
};

static void *foreign_cancel(void *arg)
{
	struct xthread_handle *x = arg;
	int r = laio_cancel(x->h);
	cr_expect(r == -1 && errno == EINVAL, "another thread's handle: %d %s", r, strerror(errno));
	return NULL;
}

static void cancel_body(void *arg)
{
	(void)arg;
	int p[2];
	char c;
	make_pipe(p);
	EXPECT(laio_syscall(SYS_read, p[0], &c, 1) == -1 && errno == EINPROGRESS, "blocked read");
	void *h = laio_gethandle();
	struct xthread_handle x = { h };
	pthread_t t;
	pthread_create(&t, NULL, foreign_cancel, &x);
	pthread_join(t, NULL);
	usleep(20 * 1000);
	EXPECT(laio_cancel(h) == 0, "cancel: %s", strerror(errno));
	struct laio_completion cp;
	EXPECT(poll_n(&cp, 1, 5) == 1, "the cancelled call completes");
	EXPECT(cp.laio_handle == h && cp.laio_return_value == -1 &&
	       (cp.laio_errno == EINTR || cp.laio_errno == ECANCELED),
	       "cancelled: %ld errno %d", cp.laio_return_value, cp.laio_errno);
	EXPECT(laio_cancel(h) == -1 && errno == ENOENT, "cancel after completion: ENOENT");
	int junk;
	EXPECT(laio_cancel(&junk) == -1 && errno == EINVAL, "garbage: EINVAL");
	EXPECT(laio_cancel(NULL) == -1 && errno == EINVAL, "NULL: EINVAL");
	EXPECT(laio_cancel((char *)h + 1) == -1 && errno == EINVAL, "inside a handle: EINVAL");
	struct laio_stats st;
	laio_stats(&st);
	EXPECT(st.in_flight == 0 && st.cancelled == 1, "nothing leaks: in flight %lu", st.in_flight);
	close(p[0]);
	close(p[1]);
}

Test(laio, cancel)
{
	all_detectors(cancel_body, NULL, false);
}

/* At the in-flight limit a call that blocks completes synchronously and is counted. */
static void limit_body(void *arg)
{
	(void)arg;
	struct laio_config cfg = { .detector = LAIO_DETECT_AUTO, .max_inflight = 2 };
	EXPECT(laio_init(&cfg) == 0, "laio_init");
	struct timespec ts = { 0, 100 * 1000 * 1000 };
	EXPECT(laio_syscall(SYS_nanosleep, &ts, NULL) == -1 && errno == EINPROGRESS, "1");
	EXPECT(laio_syscall(SYS_nanosleep, &ts, NULL) == -1 && errno == EINPROGRESS, "2");
	double t0 = now_s();
	long r = laio_syscall(SYS_nanosleep, &ts, NULL);
	EXPECT(r == 0, "third call runs synchronously at the limit: %ld %s", r, strerror(errno));
	EXPECT(now_s() - t0 >= 0.09, "it really slept");
	EXPECT(laio_gethandle() == NULL, "no handle");
	struct laio_stats st;
	laio_stats(&st);
	EXPECT(st.sync_at_limit == 1, "counted: %lu", st.sync_at_limit);
	struct laio_completion c[3];
	EXPECT(poll_n(c, 2, 5) == 2, "the two background calls complete");
}

Test(laio, inflight_limit)
{
	with_detector(LAIO_DETECT_AUTO, limit_body, NULL);
	with_detector(LAIO_DETECT_EAGER, limit_body, NULL);
}

Test(laio, poll_bad_arguments)
{
	struct laio_completion c[1];
	struct timespec bad1 = { 0, 1000000000L }, bad2 = { -1, 0 }, bad3 = { 0, -1 }, zero = { 0, 0 };
	errno = 0;
	cr_expect(laio_poll(c, -1, &zero) == -1 && errno == EINVAL, "negative count");
	errno = 0;
	cr_expect(laio_poll(NULL, 1, &zero) == -1 && errno == EINVAL, "NULL array");
	cr_expect(laio_poll(c, 1, &bad1) == -1 && errno == EINVAL, "tv_nsec too big");
	cr_expect(laio_poll(c, 1, &bad2) == -1 && errno == EINVAL, "negative seconds");
	cr_expect(laio_poll(c, 1, &bad3) == -1 && errno == EINVAL, "negative nanoseconds");
	cr_expect(laio_poll(NULL, 0, &zero) == 0, "zero entries");
	cr_expect(laio_poll(c, 1, &zero) == 0, "nothing ready, do not wait");
	cr_expect(laio_poll(c, 1, NULL) == 0, "nothing in flight: no wait forever");
}

static void timeout_body(void *arg)
{
	(void)arg;
	int p[2];
	char c;
	make_pipe(p);
	EXPECT(laio_syscall(SYS_read, p[0], &c, 1) == -1 && errno == EINPROGRESS, "blocked");
	struct laio_completion cp;
	struct timespec ts = { 0, 50 * 1000 * 1000 };
	double t0 = now_s();
	EXPECT(laio_poll(&cp, 1, &ts) == 0, "timeout");
	EXPECT(now_s() - t0 >= 0.049, "waited the timeout: %.3f", now_s() - t0);
	EXPECT(write(p[1], "x", 1) == 1, "write");
	EXPECT(laio_poll(&cp, 1, NULL) == 1 && cp.laio_return_value == 1, "then completes");
	close(p[0]);
	close(p[1]);
}

Test(laio, poll_timeout)
{
	all_detectors(timeout_body, NULL, false);
}

static void auto_body(void *arg)
{
	(void)arg;
	cr_log_info("auto uses: read -> %s, recvfrom -> %s, write -> %s, nanosleep -> %s",
		    laio_detector_name(SYS_read), laio_detector_name(SYS_recvfrom),
		    laio_detector_name(SYS_write), laio_detector_name(SYS_nanosleep));
	const char *lazy = laio_detector_name(SYS_nanosleep);
	if (sa_detector_available(SA_DETECT_IDLE, NULL)) {
		/* the idle standby makes the trap safe for every call: no probe */
		EXPECT(strcmp(laio_detector_name(SYS_read), "idle") == 0, "auto traps reads");
		EXPECT(strcmp(lazy, "idle") == 0, "auto: %s", lazy);
	} else {
		EXPECT(strcmp(laio_detector_name(SYS_read), "probe") == 0, "auto probes reads");
		/* not upcall: its perf event descriptors are in the program's table */
		EXPECT(strcmp(lazy, "watchdog") == 0, "auto: %s", lazy);
	}
}

Test(laio, auto_picks_per_call)
{
	with_detector(LAIO_DETECT_AUTO, auto_body, NULL);
}

Test(laio, detector_by_environment)
{
	setenv("LAIO_DETECTOR", "watchdog", 1);
	cr_expect_str_eq(laio_detector_name(SYS_nanosleep), "watchdog");
	cr_expect_str_eq(laio_detector_name(SYS_read), "watchdog");
	cr_expect_str_eq(laio_detector_name(SYS_exit), "none");
}

/* 70,000 background calls in a row on one thread, each reported before the next: more than
 * ThreadSanitizer's shadow call stack holds (64Ki entries), which the upcall path once grew by
 * an entry or two per call (functions that never return), until a TSan build crashed. Every
 * call is reported once, with its result. */
static void long_run_body(void *arg)
{
	(void)arg;
	int fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	EXPECT(fd >= 0, "open /dev/zero");
	long background = 0;
	for (int i = 0; i < 70000; i++) {
		char c = 1;
		long r = laio_syscall(SYS_read, fd, &c, 1);
		if (r == -1 && errno == EINPROGRESS) {
			void *h = laio_gethandle();
			struct laio_completion done;
			int n = laio_poll(&done, 1, NULL);
			EXPECT(n == 1 && done.laio_handle == h && done.laio_return_value == 1,
			       "call %d: %d completions, %ld", i, n, n == 1 ? done.laio_return_value : 0);
			background++;
		} else {
			EXPECT(r == 1, "call %d: %ld %s", i, r, strerror(errno));
		}
		EXPECT(c == 0, "call %d read a zero", i);
	}
	close(fd);
	EXPECT(background == 70000, "every call went to the background: %ld", background);
}

Test(laio, seventy_thousand_background_calls_in_a_row, .timeout = 120)
{
	with_detector(LAIO_DETECT_EAGER, long_run_body, NULL);
}

/*
 * Regression: a signal mask changed with laio_syscall(SYS_rt_sigprocmask) must follow the flow
 * through a hand-off. rt_sigprocmask took the trap under the idle and watchdog detectors, and
 * only the direct route recorded the new mask (kernel-shim/sigmask.c), so the claimer gave the
 * flow the mask it had before: SIGUSR1 was unblocked again after the next call that blocked.
 */
static void mask_body(void *arg)
{
	(void)arg;
	uint64_t usr1 = 1ull << (SIGUSR1 - 1), before = 0;
	EXPECT(laio_syscall(SYS_rt_sigprocmask, SIG_BLOCK, &usr1, &before, 8) == 0,
	       "rt_sigprocmask: %s", strerror(errno));
	int p[2];
	char c;
	make_pipe(p);
	long r = laio_syscall(SYS_read, p[0], &c, 1);
	sigset_t now;
	pthread_sigmask(SIG_BLOCK, NULL, &now);
	EXPECT(sigismember(&now, SIGUSR1), "[%s] SIGUSR1 blocked with rt_sigprocmask through LAIO "
	       "is unblocked after the call (%s)", laio_detector_name(SYS_read),
	       r == -1 ? "it went to the background" : "it ran synchronously");
	EXPECT(write(p[1], "x", 1) == 1, "write");
	if (r == -1 && errno == EINPROGRESS) {
		struct laio_completion cp;
		EXPECT(poll_n(&cp, 1, 5) == 1, "completion");
	}
	EXPECT(laio_syscall(SYS_rt_sigprocmask, SIG_SETMASK, &before, NULL, 8) == 0, "restore");
	close(p[0]);
	close(p[1]);
}

Test(laio, mask_set_through_laio_follows_the_flow)
{
	all_detectors(mask_body, NULL, false);
}
