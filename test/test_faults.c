/* test_faults.c - faults around LAIO calls: no spare activation to be had, signals, threads that
 * exit with calls in flight, fork(), the in-flight limit, and a million handle cycles. What
 * each returned is logged (cr_log_info, run with --verbose) and summed up in
 * docs/reliability.md.
 *
 * Tests named regress_* guard defects of the library that this suite found and that have been
 * fixed (docs/reliability.md, "Library defects found"). */
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include "test-util.h"
#include "sa.h"

static __thread const char *det;

static bool sanitized(void)
{
	return getenv("LAIO_SANITIZED") != NULL;
}

/* Under ThreadSanitizer a thread cannot make more than some ten thousand background calls: a
 * handoff resumes a saved context without a function exit TSan can see, its shadow call stack
 * grows by a few frames per call, and TSan aborts ("CHECK failed: sanitizer_stackdepot.cpp:83")
 * after ~15000 of them (docs/reliability.md). The long loops are cut to a few thousand there. */
static bool tsan(void)
{
#if defined(__SANITIZE_THREAD__)
	return true;
#else
	return false;
#endif
}


static const char *ename(int e)
{
	const char *n = e ? strerrorname_np(e) : NULL;
	return n ? n : "0";
}

/* /proc/self/status: Threads and VmRSS (kB). */
struct proc_figures {
	long threads, rss_kb;
};

static struct proc_figures proc_now(void)
{
	struct proc_figures f = { -1, -1 };
	FILE *fp = fopen("/proc/self/status", "r");
	char line[256];
	if (!fp)
		return f;
	while (fgets(line, sizeof line, fp)) {
		if (strncmp(line, "Threads:", 8) == 0)
			f.threads = atol(line + 8);
		else if (strncmp(line, "VmRSS:", 6) == 0)
			f.rss_kb = atol(line + 6);
	}
	fclose(fp);
	return f;
}

static int pipe_bytes(int fd)
{
	int n = -1;
	ioctl(fd, FIONREAD, &n);
	return n;
}

/* Write `data` to fd from another (non-LAIO) thread: as soon as *gone is set (the call went
 * to the background), or after `ms` milliseconds at the latest (a synchronous call then gets
 * its data and returns; a fixed delay never decides whether a detector was fast enough). */
struct later {
	int fd;
	int ms;
	const char *data;
	int *gone;
	pthread_t t;
};

static void *later_main(void *arg)
{
	struct later *l = arg;
	double end = now_s() + l->ms / 1000.0;
	while (now_s() < end && !(l->gone && __atomic_load_n(l->gone, __ATOMIC_ACQUIRE)))
		usleep(1000);
	if (write(l->fd, l->data, strlen(l->data)) < 0)
		cr_log_error("later write: %s", strerror(errno));
	return NULL;
}

static void later_start(struct later *l, int fd, int ms, const char *data, int *gone)
{
	*l = (struct later){ fd, ms, data, gone, 0 };
	cr_expect_eq(pthread_create(&l->t, NULL, later_main, l), 0);
}

static void later_join(struct later *l)
{
	pthread_join(l->t, NULL);
}

static void set_gone(int *gone)
{
	__atomic_store_n(gone, 1, __ATOMIC_RELEASE);
}

struct run {
	void (*fn)(int d);
	int d;
};

static void run_body(void *arg)
{
	struct run *r = arg;
	det = det_names[r->d];
	r->fn(r->d);
}

static void every_detector(void (*fn)(int d))
{
	for (int d = 0; d < LAIO_DETECT_COUNT; d++) {
		struct run r = { fn, d };
		with_detector(d, run_body, &r);
	}
}

static void drain_all(int want, const char *what)
{
	struct laio_completion c[64];
	int got = 0;
	double end = now_s() + 10;
	while (got < want && now_s() < end) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		int n = laio_poll(c, 64, &ts);
		if (n < 0)
			break;
		got += n;
	}
	cr_expect_eq(got, want, "[%s] %s: %d of %d completions", det, what, got, want);
	struct laio_stats st;
	laio_stats(&st);
	cr_expect_eq(st.in_flight, 0, "[%s] %s: %lu still in flight", det, what, st.in_flight);
}

/* ---- 1. no spare activation can be created ---- */

/*
 * Injected failures (sa_inject_create_failures): every attempt to create an activation fails.
 * Calls that block and stay blocked (a read of an idle socket, or a write to a full pipe, each
 * on its own descriptor) go to the background and hold the existing activations, one each,
 * until none is left; the next such call must then run synchronously. A rescuer thread ends a
 * call that has stayed blocked for a second (it writes a byte, or drains the pipe), so the
 * synchronous one returns its real result after ~1 s instead of hanging.
 */
enum hold_kind { HOLD_READ, HOLD_WRITE };

struct rescuer {
	pthread_mutex_t lock;
	int kind;
	int seq, rescued;          /* the call in progress (0: none) and the last one rescued */
	double start;
	int rfd, wfd;
	bool stop;
	pthread_t t;
};

static void rescue_action(int kind, int rfd, int wfd)
{
	if (kind == HOLD_READ) {
		if (write(wfd, "1", 1) != 1)
			cr_log_error("rescue write: %s", strerror(errno));
	} else {
		char junk[8192];
		int n = pipe_bytes(rfd);
		if (n > 0 && read(rfd, junk, (size_t)n > sizeof junk ? sizeof junk : (size_t)n) < 0)
			cr_log_error("rescue read: %s", strerror(errno));
	}
}

static void *rescuer_main(void *arg)
{
	struct rescuer *r = arg;
	for (;;) {
		usleep(10 * 1000);
		pthread_mutex_lock(&r->lock);
		if (r->stop) {
			pthread_mutex_unlock(&r->lock);
			return NULL;
		}
		if (r->seq && r->seq != r->rescued && now_s() - r->start > 1.0) {
			r->rescued = r->seq;
			rescue_action(r->kind, r->rfd, r->wfd);
		}
		pthread_mutex_unlock(&r->lock);
	}
}

struct nospare {
	long sync_r;
	int sync_e;
	double sync_dt;
	int held;
	unsigned long nsync_before, nsync_after;
	bool found;
};

/* One descriptor pair whose call blocks until rescue_action(): rfd/wfd. */
static void hold_setup(int kind, int fds[2])
{
	if (kind == HOLD_READ) {
		cr_expect_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
		return;
	}
	make_pipe(fds);
	fcntl(fds[1], F_SETPIPE_SZ, 4096);
	fcntl(fds[1], F_SETFL, O_NONBLOCK);
	char fill[4096];
	memset(fill, 'w', sizeof fill);
	while (write(fds[1], fill, sizeof fill) > 0)
		;
	fcntl(fds[1], F_SETFL, 0); /* the call must block, not say EAGAIN */
}

static void no_spare(int kind, struct nospare *out)
{
	enum { MAXHOLD = 300 };
	static char sink[MAXHOLD];
	static int fds[MAXHOLD][2];
	struct rescuer rs = { .kind = kind };
	pthread_mutex_init(&rs.lock, NULL);
	cr_assert_eq(pthread_create(&rs.t, NULL, rescuer_main, &rs), 0);
	struct laio_stats st;
	laio_stats(&st);
	out->nsync_before = st.sync_at_limit;
	sa_inject_create_failures(INT_MAX);
	int n = 0, held = 0;
	for (; n < MAXHOLD && !out->found; n++) {
		hold_setup(kind, fds[n]);
		pthread_mutex_lock(&rs.lock);
		rs.seq = n + 1;
		rs.start = now_s();
		rs.rfd = fds[n][0];
		rs.wfd = fds[n][1];
		pthread_mutex_unlock(&rs.lock);
		double t0 = now_s();
		errno = 0;
		long r = kind == HOLD_READ ? laio_syscall(SYS_read, fds[n][0], &sink[n], 1)
					   : laio_syscall(SYS_write, fds[n][1], "h", 1);
		int e = errno;
		double dt = now_s() - t0;
		pthread_mutex_lock(&rs.lock);
		rs.seq = 0;
		pthread_mutex_unlock(&rs.lock);
		if (r == -1 && e == EINPROGRESS) {
			held++;
			continue;
		}
		laio_stats(&st);
		out->found = true;
		out->sync_r = r;
		out->sync_e = r == -1 ? e : 0;
		out->sync_dt = dt;
		out->nsync_after = st.sync_at_limit;
		cr_expect_null(laio_gethandle(), "[%s] a synchronous call has no handle", det);
	}
	sa_inject_create_failures(0);
	pthread_mutex_lock(&rs.lock);
	rs.stop = true;
	pthread_mutex_unlock(&rs.lock);
	pthread_join(rs.t, NULL);
	out->held = held;
	/* end the held calls (the rescuer may have ended some already: one byte too many is
	   harmless, the descriptors are closed afterwards) */
	for (int i = 0; i < n; i++)
		rescue_action(kind, fds[i][0], fds[i][1]);
	drain_all(held, "held calls");
	for (int i = 0; i < n; i++) {
		close(fds[i][0]);
		close(fds[i][1]);
	}
	pthread_mutex_destroy(&rs.lock);
}

static void spare_fail_body(int d)
{
	struct nospare ns = { 0 };
	no_spare(HOLD_READ, &ns);
	cr_expect(ns.found, "[%s] never ran out of activations", det);
	cr_log_info("[%s] no activation can be created: %d blocked reads held the activations; the "
		    "next one ran synchronously: %ld %s after %.2f s (rescued); sync_at_limit %lu "
		    "-> %lu", det, ns.held, ns.sync_r, ename(ns.sync_e), ns.sync_dt,
		    ns.nsync_before, ns.nsync_after);
	cr_expect(ns.sync_r == 1 && ns.sync_dt > 0.5 && ns.sync_dt < 30,
		  "[%s] the synchronous read returns its byte once rescued: %ld %s after %.2f s",
		  det, ns.sync_r, ename(ns.sync_e), ns.sync_dt);
	/* counted (under the lazy detectors too: regress_no_spare_lazy_call_counted) */
	(void)d;
	cr_expect_eq(ns.nsync_after, ns.nsync_before + 1, "[%s] counted in sync_at_limit", det);
	/* once activations can be created again, calls go to the background again */
	int p[2];
	static char b;
	make_pipe(p);
	struct later l;
	int gone = 0;
	later_start(&l, p[1], 5000, "r", &gone);
	errno = 0;
	long r = laio_syscall(SYS_read, p[0], &b, 1);
	int e = errno;
	set_gone(&gone);
	cr_expect(r == -1 && e == EINPROGRESS, "[%s] after recovery a read of an empty pipe goes "
		  "to the background: %ld %s", det, r, strerror(e));
	if (r == -1 && e == EINPROGRESS)
		drain_all(1, "after recovery");
	later_join(&l);
	close(p[0]);
	close(p[1]);
}

Test(faults, no_spare_activation_runs_synchronously, .timeout = 120)
{
	every_detector(spare_fail_body);
}

/*
 * Regression (defect found here, fixed in b9fe72f). sa.h promises that sa_nsync
 * (laio_stats().sync_at_limit) counts "calls that blocked but ran synchronously: no spare
 * activation could be had", but only the moved-call path counted them (kernel-shim/move.c,
 * ks_move_call). Under the lazy detectors (upcall, watchdog, and auto for every call that is
 * not a read) a call that blocked while no activation could be had ran to its end
 * synchronously and nothing counted it:
 *   - watchdog (kernel-shim/watchdog.c, look()): ks_act_get() returned NULL, no claim was sent,
 *     sa_nsync was not incremented;
 *   - upcall: the standby claims without a spare, but then the VP has no standby and falls back
 *     to the watchdog (kernel-shim/upcall.c, ks_upcall_fallback), with the same gap.
 * Shown with a write to a full pipe (lazy under auto as well).
 */
static void nospare_count_body(int d)
{
	(void)d;
	struct nospare ns = { 0 };
	no_spare(HOLD_WRITE, &ns);
	cr_expect(ns.found, "[%s] never ran out of activations", det);
	cr_log_info("[%s] no activation, write to a full pipe: %d held; the next ran synchronously: "
		    "%ld %s after %.2f s; sync_at_limit %lu -> %lu", det, ns.held, ns.sync_r,
		    ename(ns.sync_e), ns.sync_dt, ns.nsync_before, ns.nsync_after);
	cr_expect_eq(ns.sync_r, 1, "[%s] the write completes once rescued", det);
	cr_expect_eq(ns.nsync_after, ns.nsync_before + 1,
		     "[%s] a call that blocked and ran synchronously for want of an activation is "
		     "not counted in laio_stats().sync_at_limit (%lu -> %lu)", det, ns.nsync_before,
		     ns.nsync_after);
}

Test(faults, regress_no_spare_lazy_call_counted, .timeout = 120)
{
	int ds[] = { LAIO_DETECT_UPCALL, LAIO_DETECT_WATCHDOG, LAIO_DETECT_AUTO };
	for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) {
		struct run r = { nospare_count_body, ds[i] };
		with_detector(ds[i], run_body, &r);
	}
}

/*
 * RLIMIT_NPROC. Root ignores it (the kernel skips the check for CAP_SYS_RESOURCE and
 * CAP_SYS_ADMIN), so lowering it as root changes nothing; a child that gives up root
 * (setuid(65534)) is held to it. In such a child, with RLIMIT_NPROC = 1 no thread can be created
 * at all: LAIO must still work, every blocking call synchronously.
 */
static void *noop(void *arg)
{
	return arg;
}

static int child_rlimit(int p0, int d)
{
	int fails = 0;
	struct rlimit rl = { 1, 1 };
	if (setgid(65534) != 0 || setuid(65534) != 0)
		return 100;
	if (setrlimit(RLIMIT_NPROC, &rl) != 0)
		return 101;
	pthread_t t;
	int rc = pthread_create(&t, NULL, noop, NULL);
	if (rc == 0) {
		pthread_join(t, NULL);
		return 102; /* the limit does not hold even here */
	}
	struct laio_config c = { .detector = d };
	errno = 0;
	int ri = laio_init(&c);
	fprintf(stderr, "[%s, uid 65534, RLIMIT_NPROC 1] laio_init -> %d %s\n", det_names[d], ri,
		ri ? ename(errno) : "");
	if (ri != 0 && d != LAIO_DETECT_WATCHDOG)
		fails |= 1; /* the watchdog detector needs a thread of its own: laio_init may fail */
	static char b;
	double t0 = now_s();
	errno = 0;
	long r = laio_syscall(SYS_read, p0, &b, 1); /* the parent writes after 150 ms */
	int e = errno;
	double dt = now_s() - t0;
	struct laio_stats st;
	laio_stats(&st);
	fprintf(stderr, "[%s, uid 65534, RLIMIT_NPROC 1] read of an empty pipe -> %ld %s after "
		"%.2f s, sync_at_limit %lu\n", det_names[d], r, r < 0 ? ename(e) : "", dt,
		st.sync_at_limit);
	if (r != 1 || laio_gethandle() != NULL)
		fails |= 2;
	if (st.in_flight != 0)
		fails |= 4;
	if (d == LAIO_DETECT_EAGER || d == LAIO_DETECT_PROBE) {
		if (st.sync_at_limit != 1)
			fails |= 8;
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		if (laio_syscall(SYS_nanosleep, &ts, NULL) != 0)
			fails |= 16;
	}
	return fails;
}

Test(faults, rlimit_nproc, .timeout = 60)
{
	SKIP_FORK_UNDER_TSAN();
	/* as root: the limit is not enforced */
	if (geteuid() == 0) {
		pid_t pid = fork();
		if (pid == 0) {
			struct rlimit rl = { 1, 1 };
			setrlimit(RLIMIT_NPROC, &rl);
			pthread_t t;
			int rc = pthread_create(&t, NULL, noop, NULL);
			if (rc == 0)
				pthread_join(t, NULL);
			_exit(rc == 0 ? 0 : 1);
		}
		int st;
		waitpid(pid, &st, 0);
		cr_log_info("as root, RLIMIT_NPROC 1: pthread_create %s",
			    WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "still succeeds (root ignores it)"
								 : "fails");
	} else {
		cr_log_warn("not root: cannot change uid; skipped");
		return;
	}
	int ds[] = { LAIO_DETECT_EAGER, LAIO_DETECT_PROBE, LAIO_DETECT_WATCHDOG };
	for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) {
		int p[2];
		make_pipe(p);
		pid_t pid = fork();
		if (pid == 0)
			_exit(child_rlimit(p[0], ds[i]));
		usleep(150 * 1000);
		cr_expect_eq(write(p[1], "n", 1), 1);
		int st;
		cr_assert_eq(waitpid(pid, &st, 0), pid);
		int code = WIFEXITED(st) ? WEXITSTATUS(st) : 200 + WTERMSIG(st);
		cr_expect(code < 100, "[%s] the child could not set itself up (%d)", det_names[ds[i]],
			  code);
		cr_expect_eq(code, 0, "[%s] LAIO without any thread to spare: failures 0x%x "
			     "(1 laio_init, 2 not synchronous, 4 in flight, 8 not counted, "
			     "16 nanosleep)", det_names[ds[i]], code);
		close(p[0]);
		close(p[1]);
	}
}

/* ---- 2. signals ---- */

/*
 * The rule (docs/design.md, "Signals"): threads that use LAIO should block asynchronous signals
 * and take them through a signalfd. What happens when they do not: a handled SIGUSR1 sent to
 * the process (or to the thread) while a call runs in the background.
 */
static int usr1_count;
static pid_t usr1_tids[64];

static void on_usr1(int sig)
{
	(void)sig;
	int i = __atomic_fetch_add(&usr1_count, 1, __ATOMIC_RELAXED);
	if (i < 64)
		usr1_tids[i] = (pid_t)syscall(SYS_gettid);
}

struct sigrun {
	int d;
	bool restart;     /* SA_RESTART on the handler */
	bool to_thread;   /* pthread_kill() of the worker rather than kill() of the process */
	pthread_t worker;
	int p[2];
	int sent;
};

static void *sig_sender(void *arg)
{
	struct sigrun *s = arg;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	for (int i = 0; i < 5; i++) {
		usleep(15 * 1000);
		if (s->to_thread)
			pthread_kill(s->worker, SIGUSR1);
		else
			kill(getpid(), SIGUSR1);
		s->sent++;
	}
	usleep(20 * 1000);
	if (write(s->p[1], "s", 1) != 1)
		cr_log_error("write: %s", strerror(errno));
	return NULL;
}

static void *sig_worker(void *arg)
{
	struct sigrun *s = arg;
	struct laio_config c = { .detector = s->d };
	det = det_names[s->d];
	if (laio_init(&c) < 0)
		return NULL;
	static char b;
	errno = 0;
	long r = laio_syscall(SYS_read, s->p[0], &b, 1);
	cr_expect(r == -1 && errno == EINPROGRESS, "[%s] read of an empty pipe: %ld %s", det, r,
		  strerror(errno));
	void *h = laio_gethandle();
	pthread_t snd;
	cr_expect_eq(pthread_create(&snd, NULL, sig_sender, s), 0);
	struct laio_completion cp[2];
	int n = poll_n(cp, 1, 10);
	pthread_join(snd, NULL);
	cr_expect_eq(n, 1, "[%s] the call completes", det);
	bool intr = n == 1 && cp[0].laio_return_value == -1 && cp[0].laio_errno == EINTR;
	cr_expect(n == 1 && cp[0].laio_handle == h &&
		  ((cp[0].laio_return_value == 1 && b == 's') || intr),
		  "[%s] completion: %ld %s", det, cp[0].laio_return_value, ename(cp[0].laio_errno));
	/* exactly once */
	struct timespec zero = { 0, 0 };
	usleep(20 * 1000);
	cr_expect_eq(laio_poll(cp, 2, &zero), 0, "[%s] no second completion", det);
	/* an interrupted read took nothing: the byte is still there */
	cr_expect_eq(pipe_bytes(s->p[0]), intr ? 1 : 0, "[%s] bytes left", det);
	struct laio_stats st;
	laio_stats(&st);
	cr_expect_eq(st.in_flight, 0, "[%s] in flight", det);
	int handled = __atomic_load_n(&usr1_count, __ATOMIC_RELAXED);
	int distinct = 0;
	for (int i = 0; i < handled && i < 64; i++) {
		bool seen = false;
		for (int j = 0; j < i; j++)
			seen |= usr1_tids[j] == usr1_tids[i];
		distinct += !seen;
	}
	cr_log_info("[%s] %d x SIGUSR1 (%s, %s) during a background read: handler ran %d time(s) "
		    "on %d kernel thread(s); completion %s", det, s->sent,
		    s->to_thread ? "pthread_kill" : "kill", s->restart ? "SA_RESTART" : "no SA_RESTART",
		    handled, distinct, intr ? "-1 EINTR" : "1 (the byte)");
	cr_expect_geq(handled, 1, "[%s] the handler ran", det);
	return NULL;
}

static void signal_case(int d, bool restart, bool to_thread)
{
	struct sigaction sa = { 0 };
	sa.sa_handler = on_usr1;
	sa.sa_flags = restart ? SA_RESTART : 0;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	usr1_count = 0;
	struct sigrun s = { .d = d, .restart = restart, .to_thread = to_thread };
	make_pipe(s.p);
	/* the worker starts with SIGUSR1 open (its VP records that mask); this thread then
	   blocks it so that a process signal goes to the worker's kernel threads */
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &set, &old);
	cr_assert_eq(pthread_create(&s.worker, NULL, sig_worker, &s), 0);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pthread_join(s.worker, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(s.p[0]);
	close(s.p[1]);
}

Test(faults, sigusr1_during_background_call, .timeout = 120)
{
	for (int d = 0; d < LAIO_DETECT_COUNT; d++) {
		signal_case(d, true, false);
		signal_case(d, false, false);
		signal_case(d, false, true);
	}
}

/* The signal mask belongs to the user's flow: changes made after the thread's first LAIO call
 * survive a handoff of its virtual processor to another kernel thread. */
static bool usr1_blocked(void)
{
	sigset_t cur;
	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	return sigismember(&cur, SIGUSR1) == 1;
}

static void handoff(int p[2])
{
	static char b;
	errno = 0;
	long r = laio_syscall(SYS_read, p[0], &b, 1);
	cr_expect(r == -1 && errno == EINPROGRESS, "[%s] read of an empty pipe", det);
	cr_expect_eq(write(p[1], "m", 1), 1);
	struct laio_completion c;
	cr_expect_eq(poll_n(&c, 1, 10), 1, "[%s] completion", det);
}

static void mask_body(int d)
{
	(void)d;
	int p[2];
	make_pipe(p);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	bool at_start = usr1_blocked();
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	handoff(p);
	bool after_block = usr1_blocked();
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	handoff(p);
	bool after_unblock = usr1_blocked();
	cr_log_info("[%s] SIGUSR1 %s at the first call; blocked, handoff: %s; unblocked, handoff: "
		    "%s", det, at_start ? "blocked" : "open", after_block ? "blocked" : "OPEN",
		    after_unblock ? "BLOCKED" : "open");
	cr_expect(after_block, "[%s] a mask change made after the first call was lost", det);
	cr_expect(!after_unblock, "[%s] a mask change made after the first call was lost", det);
	close(p[0]);
	close(p[1]);
}

Test(faults, signal_mask_follows_the_flow)
{
	every_detector(mask_body);
}

/*
 * Regression: the claimer read the user's mask from the blocked runner after the verdict, and a
 * call that ended during the claim had already put on the spares' mask (every signal blocked):
 * the VP's flow then ran with every signal blocked for good, and a server that waited for
 * SIGTERM never stopped. Here calls block and end at once, over and over (a feeder writes a
 * byte right after each read starts); SIGTERM, open at the start, must stay open.
 */
struct feeder {
	int fd;
	int stop;
	int *turn;
};

static void *feed_on_turn(void *arg)
{
	struct feeder *f = arg;
	int seen = 0;
	while (!__atomic_load_n(&f->stop, __ATOMIC_ACQUIRE)) {
		int t = __atomic_load_n(f->turn, __ATOMIC_ACQUIRE);
		if (t == seen)
			continue; /* spin: the byte must follow the read within microseconds */
		seen = t;
		double until = now_s() + (double)((t * 37) % 150) * 1e-6;
		while (now_s() < until)
			; /* 0-150 us: the byte lands anywhere in the block, the claim and the upcall */
		if (write(f->fd, "x", 1) != 1)
			break;
	}
	return NULL;
}

static bool term_open(void)
{
	sigset_t cur;
	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	return sigismember(&cur, SIGTERM) == 0;
}

static void quick_end_body(int d)
{
	(void)d;
	int p[2], turn = 0;
	make_pipe(p);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	struct feeder f = { p[1], 0, &turn };
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, feed_on_turn, &f), 0);
	int calls = 2000 / slow_factor(), bg = 0, closed = 0;
	char b;
	for (int i = 1; i <= calls && !closed; i++) {
		__atomic_store_n(&turn, i, __ATOMIC_RELEASE);
		errno = 0;
		long r = laio_syscall(SYS_read, p[0], &b, 1);
		if (r == -1 && errno == EINPROGRESS) {
			bg++;
			struct laio_completion c;
			cr_assert_eq(poll_n(&c, 1, 10), 1, "[%s] completion", det);
		}
		if (!term_open())
			closed = i;
	}
	__atomic_store_n(&f.stop, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	cr_log_info("[%s] %d reads, %d in the background; SIGTERM %s", det, calls, bg,
		    closed ? "BLOCKED" : "open throughout");
	cr_expect(!closed, "[%s] the flow's signal mask was lost at call %d (%d in the background)",
		  det, closed, bg);
	close(p[0]);
	close(p[1]);
}

Test(faults, regress_mask_kept_when_call_ends_during_claim, .timeout = 120)
{
	every_detector(quick_end_body);
}

/* The rule in practice: SIGUSR2 blocked everywhere, taken through a signalfd read with
 * laio_syscall: it goes to the background while no signal is pending and completes when one
 * arrives; with a signal already pending it completes at once. */
struct sfd_run {
	int d;
};

static int sfd_gone;

static void *sfd_sender(void *arg)
{
	(void)arg;
	double end = now_s() + 5;
	while (now_s() < end && !__atomic_load_n(&sfd_gone, __ATOMIC_ACQUIRE))
		usleep(1000);
	usleep(20 * 1000);
	kill(getpid(), SIGUSR2);
	return NULL;
}

static void *sfd_worker(void *arg)
{
	struct sfd_run *s = arg;
	struct laio_config c = { .detector = s->d };
	det = det_names[s->d];
	if (laio_init(&c) < 0)
		return NULL;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC);
	cr_expect_geq(sfd, 0, "signalfd: %s", strerror(errno));
	static struct signalfd_siginfo si;
	memset(&si, 0, sizeof si);
	pthread_t snd;
	sfd_gone = 0;
	cr_expect_eq(pthread_create(&snd, NULL, sfd_sender, NULL), 0);
	double t0 = now_s();
	errno = 0;
	long r = laio_syscall(SYS_read, sfd, &si, sizeof si);
	int e = errno;
	set_gone(&sfd_gone);
	double dt = now_s() - t0;
	bool bg = r == -1 && e == EINPROGRESS;
	void *h = laio_gethandle();
	if (bg) {
		struct laio_completion cp;
		cr_expect_eq(poll_n(&cp, 1, 10), 1, "[%s] the signalfd read completes", det);
		cr_expect(cp.laio_handle == h, "[%s] handle", det);
		r = cp.laio_return_value;
	}
	pthread_join(snd, NULL);
	cr_log_info("[%s] signalfd read, no signal pending: %s after %.3f s; then %ld bytes, signal "
		    "%u", det, bg ? "EINPROGRESS" : "ran synchronously", dt, r, si.ssi_signo);
	cr_expect_eq(r, (long)sizeof si, "[%s] one signalfd_siginfo", det);
	cr_expect_eq(si.ssi_signo, (unsigned)SIGUSR2, "[%s] the signal", det);
	if (s->d != LAIO_DETECT_PROBE)
		cr_expect(bg, "[%s] with no signal pending the read goes to the background", det);
	else if (!bg)
		cr_log_info("[probe] a signalfd has no non-blocking read form here: the read runs "
			    "synchronously under the probe detector");
	/* a signal already pending: at once (eager: via the background) */
	memset(&si, 0, sizeof si);
	kill(getpid(), SIGUSR2);
	errno = 0;
	r = laio_syscall(SYS_read, sfd, &si, sizeof si);
	e = errno;
	if (r == -1 && e == EINPROGRESS) {
		struct laio_completion cp;
		cr_expect(s->d == LAIO_DETECT_EAGER, "[%s] a pending signal: the read does not block",
			  det);
		cr_expect_eq(poll_n(&cp, 1, 10), 1, "[%s] completion", det);
		r = cp.laio_return_value;
	}
	cr_expect(r == (long)sizeof si && si.ssi_signo == (unsigned)SIGUSR2,
		  "[%s] pending signal read: %ld, signal %u", det, r, si.ssi_signo);
	struct laio_stats st;
	laio_stats(&st);
	cr_expect_eq(st.in_flight, 0, "[%s] in flight", det);
	close(sfd);
	return NULL;
}

Test(faults, signalfd_read_through_laio, .timeout = 60)
{
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &set, &old); /* every thread created from here inherits it */
	for (int d = 0; d < LAIO_DETECT_COUNT; d++) {
		struct sfd_run s = { d };
		pthread_t t;
		cr_assert_eq(pthread_create(&t, NULL, sfd_worker, &s), 0);
		pthread_join(t, NULL);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* ---- 3. threads that exit with calls in flight ---- */

struct exiter {
	int d;
	int p[2];
};

static char exit_buf[2];                 /* outlive the threads: the calls write here later */
static struct timespec exit_ts = { 0, 3 * 1000 * 1000 };

static void *exiter_main(void *arg)
{
	struct exiter *x = arg;
	struct laio_config c = { .detector = x->d };
	if (laio_init(&c) < 0)
		return NULL;
	for (int i = 0; i < 2; i++) {
		long r = laio_syscall(SYS_read, x->p[0], &exit_buf[i], 1);
		if (r != -1 || errno != EINPROGRESS)
			cr_expect(0, "[%s] read of an empty pipe: %ld %s", det_names[x->d], r,
				  strerror(errno));
	}
	laio_syscall(SYS_nanosleep, &exit_ts, NULL); /* background where nanosleep can be */
	return NULL;                                 /* exits with 2 or 3 calls in flight */
}

/* Wait until every activation is back in the pool (no call left running anywhere). */
static bool settle(double secs)
{
	double end = now_s() + secs;
	struct sa_counters c;
	do {
		sa_counters(&c);
		if (c.spares + c.idle_class == c.activations) /* idle standbys never rejoin */
			return true;
		usleep(5 * 1000);
	} while (now_s() < end);
	return false;
}

static void thread_exit_run(int d, int rounds, struct proc_figures *warm, struct proc_figures *end)
{
	for (int i = 0; i < rounds; i++) {
		struct exiter x = { .d = d };
		make_pipe(x.p);
		pthread_t t;
		cr_assert_eq(pthread_create(&t, NULL, exiter_main, &x), 0);
		pthread_join(t, NULL);
		cr_expect_eq(write(x.p[1], "ab", 2), 2); /* the two reads finish after the exit */
		usleep(1000);
		if (i == 19) {
			settle(5);
			*warm = proc_now();
		}
		/* close only once the reads have their bytes */
		double until = now_s() + 5;
		while (pipe_bytes(x.p[0]) > 0 && now_s() < until)
			usleep(200);
		close(x.p[0]);
		close(x.p[1]);
	}
	cr_expect(settle(10), "[%s] every call of the exited threads finished", det_names[d]);
	*end = proc_now();
}

Test(faults, thread_exit_with_calls_in_flight, .timeout = 180)
{
	int rounds = sanitized() ? 60 : 200;
	for (int d = 0; d < LAIO_DETECT_COUNT; d++) {
		if (d == LAIO_DETECT_UPCALL && !sa_detector_available(SA_DETECT_UPCALL, NULL))
			continue;
		struct proc_figures warm = { 0 }, end = { 0 };
		double t0 = now_s();
		thread_exit_run(d, rounds, &warm, &end);
		struct sa_counters c;
		sa_counters(&c);
		cr_log_info("[%s] %d threads exited with 2-3 calls in flight each (%.1f s): after 20: "
			    "Threads %ld, VmRSS %ld kB; after %d: Threads %ld, VmRSS %ld kB; "
			    "activations %lu, spares %lu", det_names[d], rounds, now_s() - t0,
			    warm.threads, warm.rss_kb, rounds, end.threads, end.rss_kb,
			    c.activations, c.spares);
		/* the per-thread LAIO state (handles, upcall stack: ~120 kB) must be freed; a
		   sanitizer's allocator keeps freed memory and shadow, so only without one */
		if (!sanitized())
			cr_expect_lt(end.rss_kb - warm.rss_kb, 16 * 1024,
			     "[%s] VmRSS grew by %ld kB over %d exited threads", det_names[d],
			     end.rss_kb - warm.rss_kb, rounds - 20);
	}
	/* a new thread still works */
	struct proc_figures a, b;
	thread_exit_run(LAIO_DETECT_AUTO, 1, &a, &b);
}

/*
 * Regression (defect found here, fixed in b9fe72f; activation/sa.c, sa_create, which called
 * ks_pool_prefill(1)): every thread that started using LAIO created one more spare activation
 * (a kernel thread with a 64 KiB pthread stack and a 256 KiB activation stack), and
 * activations never exit. A program that runs LAIO in short-lived threads (thread per
 * connection, a pool that recycles workers) grew by one kernel thread per thread it ever had:
 * 200 threads that each made one call and exited left 200 idle kernel threads behind.
 */
static void *one_call(void *arg)
{
	(void)arg;
	laio_syscall(SYS_getppid);
	return NULL;
}

Test(faults, regress_one_spare_not_one_per_thread, .timeout = 120)
{
	int n = sanitized() ? 60 : 200;
	for (int i = 0; i < 20; i++) {
		pthread_t t;
		pthread_create(&t, NULL, one_call, NULL);
		pthread_join(t, NULL);
	}
	settle(5);
	struct proc_figures a = proc_now();
	for (int i = 0; i < n; i++) {
		pthread_t t;
		pthread_create(&t, NULL, one_call, NULL);
		pthread_join(t, NULL);
	}
	settle(5);
	struct proc_figures b = proc_now();
	cr_log_info("%d threads that made one laio_syscall each: Threads %ld -> %ld, VmRSS %ld -> "
		    "%ld kB", n, a.threads, b.threads, a.rss_kb, b.rss_kb);
	cr_expect_leq(b.threads - a.threads, 16,
		      "Threads grew from %ld to %ld over %d threads that each made one call and "
		      "exited: one idle activation is left per thread", a.threads, b.threads, n);
}

/* ---- 4. fork() ---- */

/* In the child: the parent's background calls complete with ECANCELED; new calls work,
 * including one that blocks. Returns a bit set of failures. */
static int fork_child(void *h1, void *h2, int nbg)
{
	int fails = 0;
	struct laio_completion c[8];
	int got = 0;
	double end = now_s() + 5;
	while (got < nbg && now_s() < end) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		int n = laio_poll(c + got, 8 - got, &ts);
		if (n < 0)
			return 0x80;
		got += n;
	}
	if (got != nbg)
		fails |= 1;
	for (int i = 0; i < got; i++) {
		if (c[i].laio_handle != h1 && c[i].laio_handle != h2)
			fails |= 2;
		if (c[i].laio_return_value != -1 || c[i].laio_errno != ECANCELED)
			fails |= 4;
	}
	/* a call that blocks, in the child */
	int q[2];
	static char b;
	if (pipe(q) != 0)
		return 0x80;
	struct later l;
	int gone = 0;
	l = (struct later){ q[1], 5000, "k", &gone, 0 };
	if (pthread_create(&l.t, NULL, later_main, &l) != 0)
		return 0x80;
	errno = 0;
	long r = laio_syscall(SYS_read, q[0], &b, 1);
	set_gone(&gone);
	if (r == -1 && errno == EINPROGRESS) {
		struct laio_completion cp;
		struct timespec ts = { 5, 0 };
		if (laio_poll(&cp, 1, &ts) != 1 || cp.laio_return_value != 1 || b != 'k')
			fails |= 8;
	} else {
		fails |= 16;
	}
	pthread_join(l.t, NULL);
	struct timespec ts50 = { 0, 50 * 1000 * 1000 };
	r = laio_syscall(SYS_nanosleep, &ts50, NULL);
	if (r == -1 && errno == EINPROGRESS) {
		struct laio_completion cp;
		struct timespec ts = { 5, 0 };
		if (laio_poll(&cp, 1, &ts) != 1 || cp.laio_return_value != 0)
			fails |= 32;
	} else if (r != 0) {
		fails |= 32;
	}
	struct laio_stats st;
	laio_stats(&st);
	struct timespec zero = { 0, 0 };
	if (st.in_flight != 0 || laio_poll(c, 8, &zero) != 0)
		fails |= 64;
	return fails;
}

static void fork_body(int d)
{
	(void)d;
	int p[2];
	static char b;
	make_pipe(p);
	errno = 0;
	long r = laio_syscall(SYS_read, p[0], &b, 1);
	cr_expect(r == -1 && errno == EINPROGRESS, "[%s] read of an empty pipe", det);
	void *h1 = laio_gethandle(), *h2 = NULL;
	int nbg = 1;
	static struct timespec ts = { 0, 300 * 1000 * 1000 };
	r = laio_syscall(SYS_nanosleep, &ts, NULL);
	if (r == -1 && errno == EINPROGRESS) {
		h2 = laio_gethandle();
		nbg = 2;
	}
	pid_t pid = fork();
	if (pid == 0)
		_exit(fork_child(h1, h2, nbg));
	cr_assert_gt(pid, 0, "fork: %s", strerror(errno));
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	int code = WIFEXITED(st) ? WEXITSTATUS(st) : 256 + WTERMSIG(st);
	cr_log_info("[%s] fork() with %d call(s) in the background: child %s (failures 0x%x)", det,
		    nbg, code == 0 ? "got ECANCELED for each and made its own blocking calls" : "FAILED",
		    code);
	cr_expect_eq(code, 0, "[%s] child failures 0x%x (1 count, 2 handle, 4 not ECANCELED, "
		     "8/16 blocking read, 32 nanosleep, 64 leftovers, 0x80 setup, >255 signal)",
		     det, code);
	/* the parent is unaffected */
	cr_expect_eq(write(p[1], "P", 1), 1);
	struct laio_completion c[4];
	int got = poll_n(c, nbg, 10);
	cr_expect_eq(got, nbg, "[%s] the parent's calls complete", det);
	for (int i = 0; i < got; i++) {
		if (c[i].laio_handle == h1)
			cr_expect(c[i].laio_return_value == 1 && b == 'P', "[%s] parent read", det);
		else
			cr_expect(c[i].laio_handle == h2 && c[i].laio_return_value == 0,
				  "[%s] parent sleep", det);
	}
	struct laio_stats s;
	laio_stats(&s);
	cr_expect_eq(s.in_flight, 0, "[%s] in flight", det);
	close(p[0]);
	close(p[1]);
}

Test(faults, fork_with_calls_in_flight, .timeout = 60)
{
	SKIP_FORK_UNDER_TSAN();
	every_detector(fork_body);
}

/* fork() from a thread that is not a LAIO thread while another thread has calls in flight. */
struct bgthread {
	int p[2];
	int ready;
	int go;
};

static void *bg_holder(void *arg)
{
	struct bgthread *b = arg;
	static char c;
	long r = laio_syscall(SYS_read, b->p[0], &c, 1);
	cr_expect(r == -1 && errno == EINPROGRESS, "read of an empty pipe");
	__atomic_store_n(&b->ready, 1, __ATOMIC_RELEASE);
	struct laio_completion cp;
	cr_expect_eq(poll_n(&cp, 1, 10), 1, "the holder's call completes in the parent");
	cr_expect(cp.laio_return_value == 1 && c == 'h', "holder read %ld", cp.laio_return_value);
	return NULL;
}

Test(faults, fork_from_another_thread)
{
	SKIP_FORK_UNDER_TSAN();
	struct bgthread b = { 0 };
	make_pipe(b.p);
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, bg_holder, &b), 0);
	while (!__atomic_load_n(&b.ready, __ATOMIC_ACQUIRE))
		usleep(1000);
	pid_t pid = fork();
	if (pid == 0)
		_exit(fork_child(NULL, NULL, 0));
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: status 0x%x", st);
	cr_expect_eq(write(b.p[1], "h", 1), 1);
	pthread_join(t, NULL);
	close(b.p[0]);
	close(b.p[1]);
}

/* ---- 5. the in-flight limit ---- */

static void limit_body(int d)
{
	struct laio_config c = { .detector = d, .max_inflight = 3 };
	cr_expect_eq(laio_init(&c), 0, "[%s] laio_init: %s", det, strerror(errno));
	int p[2], q[2];
	static char hold[3], b;
	make_pipe(p);
	make_pipe(q);
	for (int i = 0; i < 3; i++) {
		errno = 0;
		long r = laio_syscall(SYS_read, p[0], &hold[i], 1);
		cr_expect(r == -1 && errno == EINPROGRESS, "[%s] hold %d: %ld %s", det, i, r,
			  strerror(errno));
	}
	struct laio_stats st0, st;
	laio_stats(&st0);
	int extra = 5, sync_ok = 0;
	double worst = 0;
	for (int i = 0; i < extra; i++) {
		struct later l;
		later_start(&l, q[1], 30, "e", NULL);
		double t0 = now_s();
		errno = 0;
		long r = laio_syscall(SYS_read, q[0], &b, 1);
		double dt = now_s() - t0;
		worst = dt > worst ? dt : worst;
		later_join(&l);
		sync_ok += r == 1 && laio_gethandle() == NULL;
		cr_expect(r == 1 && laio_gethandle() == NULL,
			  "[%s] call %d at the limit runs synchronously: %ld %s", det, i, r,
			  r < 0 ? strerror(errno) : "");
		cr_expect_lt(dt, 5.0, "[%s] at the limit, a call stalled %.2f s", det, dt);
	}
	laio_stats(&st);
	cr_expect_eq(st.sync_at_limit - st0.sync_at_limit, (unsigned long)extra,
		     "[%s] counted in sync_at_limit: %lu", det, st.sync_at_limit - st0.sync_at_limit);
	cr_expect_eq(st.peak_in_flight, 3, "[%s] peak %lu", det, st.peak_in_flight);
	/* a call that does not block, at the limit */
	unsigned long before = st.sync_at_limit;
	cr_expect_eq(laio_syscall(SYS_getpid), getpid(), "[%s] getpid at the limit", det);
	laio_stats(&st);
	cr_log_info("[%s] max_inflight 3, 3 in flight: %d/%d blocking reads ran synchronously "
		    "(longest %.3f s), sync_at_limit +%lu; getpid at the limit counted %lu", det,
		    sync_ok, extra, worst, before - st0.sync_at_limit, st.sync_at_limit - before);
	/* below the limit again: background again */
	cr_expect_eq(write(p[1], "xyz", 3), 3);
	drain_all(3, "held calls");
	errno = 0;
	struct later l;
	int gone = 0;
	later_start(&l, q[1], 5000, "g", &gone);
	long r = laio_syscall(SYS_read, q[0], &b, 1);
	set_gone(&gone);
	cr_expect(r == -1 && errno == EINPROGRESS, "[%s] under the limit again: %ld", det, r);
	if (r == -1)
		drain_all(1, "after the limit");
	later_join(&l);
	close(p[0]);
	close(p[1]);
	close(q[0]);
	close(q[1]);
}

Test(faults, inflight_limit_of_three, .timeout = 60)
{
	every_detector(limit_body);
}

/* ---- 6. a million handle cycles ---- */

static void cycles_body(void *arg)
{
	long n = *(long *)arg;
	struct laio_completion c;
	long sync = 0, bad = 0;
	/* warm-up: the handle pool and the activation pool reach their size */
	for (long i = 0; i < n / 100; i++)
		if (laio_syscall(SYS_getpid) == -1 && errno == EINPROGRESS)
			laio_poll(&c, 1, NULL);
	struct laio_stats st0, st;
	laio_stats(&st0);
	struct proc_figures a = proc_now();
	double t0 = now_s();
	pid_t me = getpid();
	void *lo = (void *)UINTPTR_MAX, *hi = NULL;
	/* a busy machine or a sanitizer: stop rather than time out, and say so */
	double cap = t0 + (sanitized() ? 30 : 90);
	long i;
	for (i = 0; i < n; i++) {
		if ((i & 0x3ff) == 0 && now_s() > cap)
			break;
		long r = laio_syscall(SYS_getpid);
		if (r == -1 && errno == EINPROGRESS) {
			void *h = laio_gethandle();
			lo = h < lo ? h : lo;
			hi = h > hi ? h : hi;
			if (laio_poll(&c, 1, NULL) != 1 || c.laio_handle != h ||
			    c.laio_return_value != me)
				bad++;
		} else {
			sync++;
		}
	}
	double dt = now_s() - t0;
	if (i < n) {
		cr_log_warn("machine too busy: stopped after %ld of %ld cycles (%.0f s)", i, n, dt);
		n = i;
	}
	struct proc_figures b = proc_now();
	laio_stats(&st);
	cr_log_info("eager getpid: %ld handle cycles in %.2f s (%.2f us each), %ld synchronous; "
		    "handles used span %zu bytes; Threads %ld -> %ld, VmRSS %ld -> %ld kB", n, dt,
		    dt / (double)n * 1e6, sync, (size_t)((char *)hi - (char *)lo), a.threads,
		    b.threads, a.rss_kb, b.rss_kb);
	cr_expect_eq(bad, 0, "completions that were not the call's");
	cr_expect_eq(st.blocked - st0.blocked, (unsigned long)(n - sync), "blocked count");
	cr_expect_eq(st.completed - st0.completed, (unsigned long)(n - sync), "completed count");
	cr_expect_eq(st.in_flight, 0, "in flight");
	cr_expect_leq(b.threads - a.threads, 2, "threads grew %ld -> %ld", a.threads, b.threads);
	if (!sanitized())
		cr_expect_leq(b.rss_kb - a.rss_kb, 2048, "VmRSS grew %ld -> %ld kB", a.rss_kb,
			      b.rss_kb);
	cr_expect_lt((size_t)((char *)hi - (char *)lo), (size_t)1 << 20,
		     "one call at a time must keep reusing a few handles");
}

Test(faults, million_handle_cycles, .timeout = 120)
{
	long n = tsan() ? 4000 : sanitized() ? 50000 : 1000000;
	with_detector(LAIO_DETECT_EAGER, cycles_body, &n);
}

static void pipe_cycles_body(void *arg)
{
	long n = *(long *)arg;
	int p[2];
	static char b;
	make_pipe(p);
	struct laio_completion c;
	long bg = 0, bad = 0;
	struct proc_figures a = proc_now();
	double t0 = now_s();
	double cap = t0 + (sanitized() ? 20 : 45);
	for (long i = 0; i < n; i++) {
		if ((i & 0x3ff) == 0 && now_s() > cap) {
			cr_log_warn("machine too busy: stopped after %ld of %ld cycles", i, n);
			break;
		}
		long r = laio_syscall(SYS_read, p[0], &b, 1);
		if (r == -1 && errno == EINPROGRESS) {
			bg++;
			if (write(p[1], "c", 1) != 1 || laio_poll(&c, 1, NULL) != 1 ||
			    c.laio_return_value != 1)
				bad++;
		} else {
			bad++;
		}
	}
	struct proc_figures z = proc_now();
	cr_log_info("probe read of an empty pipe, then data: %ld handle cycles in %.2f s; "
		    "Threads %ld -> %ld, VmRSS %ld -> %ld kB", bg, now_s() - t0, a.threads,
		    z.threads, a.rss_kb, z.rss_kb);
	cr_expect_eq(bad, 0, "cycles that went wrong");
	/* a spare still on its way back to the pool when the next call moves makes one more:
	   growth stays bounded, it does not follow the number of cycles */
	cr_expect_leq(z.threads - a.threads, 16, "threads");
	if (!sanitized())
		cr_expect_leq(z.rss_kb - a.rss_kb, 2048, "VmRSS");
	close(p[0]);
	close(p[1]);
}

Test(faults, probe_pipe_handle_cycles, .timeout = 60)
{
	long n = tsan() ? 4000 : sanitized() ? 20000 : 100000;
	with_detector(LAIO_DETECT_PROBE, pipe_cycles_body, &n);
}
