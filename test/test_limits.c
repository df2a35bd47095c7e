/* test_limits.c - what happens at the limits: calls that would go to the background run
 * synchronously, and the program is told (once, on stderr), counted exactly (laio_stats), and
 * limits past what the system allows are clamped and said. Also timeline files: every one the
 * program names is made, or laio_init() says why not.
 *
 * Settings read once per process (LAIO_MAX_ACTIVATIONS) are tried in a child process, whose
 * stderr the test reads. */
#include <sys/resource.h>
#include <sys/wait.h>
#include <limits.h>
#include <signal.h>
#include "test-util.h"

/* Run fn() in a child with its stderr captured into out (NUL-terminated); its exit status. */
static int in_child(void (*fn)(void), char *out, size_t size)
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(p[1], 2);
		close(p[0]);
		fn();
		_exit(0);
	}
	close(p[1]);
	size_t n = 0;
	ssize_t r;
	while (n + 1 < size && (r = read(p[0], out + n, size - 1 - n)) > 0)
		n += (size_t)r;
	out[n] = 0;
	close(p[0]);
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int count_of(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* ---- reads that outnumber the kernel threads ---- */

#define NPIPES 16
static int pipes[NPIPES][2];
static double due[1024];
static long released;
static int nreads;

/* Writes one byte into read i's pipe 25 ms after it starts: a read that went to the background
 * holds its kernel thread that long, and one that runs synchronously waits that long. */
static void *writer(void *arg)
{
	(void)arg;
	for (int i = 0; i < nreads; i++) {
		while (__atomic_load_n(&released, __ATOMIC_ACQUIRE) <= i)
			usleep(200);
		while (now_s() < due[i])
			usleep(200);
		if (write(pipes[i % NPIPES][1], "x", 1) != 1)
			_exit(3);
	}
	return NULL;
}

struct outcome {
	int background, sync, bad;
	struct laio_stats st;
};

static void reads_body(void *arg)
{
	struct outcome *o = arg;
	char b[1024];
	pthread_t w;
	released = 0;
	for (int i = 0; i < NPIPES; i++)
		make_pipe(pipes[i]);
	EXPECT(pthread_create(&w, NULL, writer, NULL) == 0, "writer");
	for (int i = 0; i < nreads; i++) {
		due[i] = now_s() + 0.025;
		__atomic_store_n(&released, i + 1, __ATOMIC_RELEASE);
		long r = laio_syscall(SYS_read, pipes[i % NPIPES][0], &b[i], 1);
		if (r == -1 && errno == EINPROGRESS)
			o->background++;
		else if (r == 1)
			o->sync++;
		else
			o->bad++;
	}
	pthread_join(w, NULL);
	struct laio_completion c[1024];
	int got = poll_n(c, o->background, 30);
	cr_expect_eq(got, o->background, "every background read completes");
	laio_stats(&o->st);
	for (int i = 0; i < NPIPES; i++) {
		close(pipes[i][0]);
		close(pipes[i][1]);
	}
}

static enum laio_detector limit_det;
static struct outcome limit_out;

static void activations_child(void)
{
	setenv("LAIO_MAX_ACTIVATIONS", "3", 1);
	nreads = 80;
	memset(&limit_out, 0, sizeof limit_out);
	if (with_detector(limit_det, reads_body, &limit_out) < 0)
		_exit(77);
	struct laio_stats *st = &limit_out.st;
	fprintf(stderr, "\nRESULT %d %d %d %lu %lu %lu %lu\n", limit_out.background,
		limit_out.sync, limit_out.bad, st->blocked, st->sync_at_limit, st->sync_inflight,
		st->sync_no_thread);
	_exit(0);
}

/* Regression: with LAIO_MAX_ACTIVATIONS=3, a call that a detector found blocked with no kernel
 * thread to spare was counted in sync_at_limit, and counted again as a background call when a
 * later look found one and claimed it (41 background, 39 synchronous, sync_at_limit 75-77). */
Test(limits, sync_at_limit_counts_only_synchronous_calls, .timeout = 120)
{
	SKIP_FORK_UNDER_TSAN();
	static const enum laio_detector dets[] = { LAIO_DETECT_AUTO, LAIO_DETECT_UPCALL,
						   LAIO_DETECT_WATCHDOG, LAIO_DETECT_IDLE,
						   LAIO_DETECT_PROBE, LAIO_DETECT_EAGER };
	for (size_t k = 0; k < sizeof dets / sizeof dets[0]; k++) {
		static char err[65536];
		limit_det = dets[k];
		int st = in_child(activations_child, err, sizeof err);
		if (st == 77) {
			cr_log_warn("[%s] not available here: skipped", det_names[dets[k]]);
			continue;
		}
		const char *res = strstr(err, "\nRESULT ");
		int bg = 0, sync = 0, bad = 0;
		unsigned long blocked = 0, nsync = 0, inflight = 0, nothread = 0;
		cr_assert(st == 0 && res && sscanf(res, "\nRESULT %d %d %d %lu %lu %lu %lu", &bg,
						   &sync, &bad, &blocked, &nsync, &inflight,
						   &nothread) == 7,
			  "[%s] the child failed (%d): %s", det_names[dets[k]], st, err);
		cr_log_info("[%s] %d background, %d synchronous; blocked %lu, sync_at_limit %lu "
			    "(in-flight limit %lu, no thread %lu)", det_names[dets[k]], bg, sync,
			    blocked, nsync, inflight, nothread);
		cr_expect_eq(bad, 0, "[%s] reads that failed", det_names[dets[k]]);
		cr_expect_eq(blocked, (unsigned long)bg, "[%s] blocked counts the background calls",
			     det_names[dets[k]]);
		/* a read that did not block (its byte came first) runs here too, uncounted */
		cr_expect_leq(nsync, (unsigned long)sync, "[%s] sync_at_limit %lu counts more calls "
			      "than ran synchronously (%d)", det_names[dets[k]], nsync, sync);
		cr_expect_eq(nsync, inflight + nothread, "[%s] the causes add up", det_names[dets[k]]);
		cr_expect_eq(inflight, 0, "[%s] no thread was at its in-flight limit",
			     det_names[dets[k]]);
		if (nothread)
			cr_expect_eq(count_of(err, "LAIO_MAX_ACTIVATIONS): calls that block run "
					      "synchronously"), 1, "[%s] said once: %s",
				     det_names[dets[k]], err);
	}
}

/* ---- the in-flight limit: said once, before any call hangs on it ---- */

static void inflight_child(void)
{
	setenv("LAIO_MAX_INFLIGHT", "2", 1);
	nreads = 12;
	memset(&limit_out, 0, sizeof limit_out);
	if (with_detector(LAIO_DETECT_AUTO, reads_body, &limit_out) < 0)
		_exit(77);
	fprintf(stderr, "\nRESULT %d %d %lu %lu %lu\n", limit_out.background, limit_out.sync,
		limit_out.st.sync_at_limit, limit_out.st.sync_inflight, limit_out.st.max_inflight);
	_exit(0);
}

Test(limits, inflight_limit_said_once_and_counted, .timeout = 60)
{
	SKIP_FORK_UNDER_TSAN();
	static char err[65536];
	int st = in_child(inflight_child, err, sizeof err);
	const char *res = strstr(err, "\nRESULT ");
	int bg = 0, sync = 0;
	unsigned long nsync = 0, inflight = 0, max = 0;
	cr_assert(st == 0 && res && sscanf(res, "\nRESULT %d %d %lu %lu %lu", &bg, &sync, &nsync,
					   &inflight, &max) == 5, "child: %d %s", st, err);
	cr_log_info("%d background, %d synchronous, sync_at_limit %lu", bg, sync, nsync);
	cr_expect_eq(max, 2);
	cr_expect_geq(sync, 1, "reads ran synchronously at the limit");
	cr_expect_eq(nsync, inflight, "all at the in-flight limit");
	cr_expect_leq(nsync, (unsigned long)sync);
	cr_expect_eq(count_of(err, "calls in flight, its limit"), 1, "said once: %s", err);
}

/* ---- limits past what the system allows ---- */

static unsigned long pid_max(void)
{
	FILE *f = fopen("/proc/sys/kernel/pid_max", "r");
	unsigned long v = 0;
	if (f) {
		if (fscanf(f, "%lu", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v;
}

static void clamp_child(void)
{
	setenv("LAIO_MAX_INFLIGHT", "2147483647", 1);
	setenv("LAIO_MAX_ACTIVATIONS", "1000000", 1);
	struct laio_stats st;
	laio_syscall(SYS_getpid);
	laio_stats(&st);
	unsigned long env = st.max_inflight;
	struct laio_config c = { .max_inflight = INT_MAX };
	int r = laio_init(&c);
	laio_stats(&st);
	fprintf(stderr, "\nRESULT %lu %d %lu\n", env, r, st.max_inflight);
	_exit(0);
}

Test(limits, limits_clamped_to_the_system, .timeout = 60)
{
	SKIP_FORK_UNDER_TSAN();
	unsigned long pm = pid_max();
	if (!pm || pm >= 1000000)
		cr_skip_test("pid_max (%lu) does not bound the settings tried", pm);
	static char err[16384];
	int st = in_child(clamp_child, err, sizeof err);
	const char *res = strstr(err, "\nRESULT ");
	unsigned long env = 0, cfg = 0;
	int r = -1;
	cr_assert(st == 0 && res && sscanf(res, "\nRESULT %lu %d %lu", &env, &r, &cfg) == 3,
		  "child: %d %s", st, err);
	cr_expect(env >= 1 && env <= pm, "LAIO_MAX_INFLIGHT clamped: %lu (pid_max %lu)", env, pm);
	cr_expect(r == 0 && cfg >= 1 && cfg <= pm, "max_inflight clamped: %d %lu", r, cfg);
	cr_expect(strstr(err, "LAIO_MAX_INFLIGHT=2147483647 is more calls in flight"), "%s", err);
	cr_expect(strstr(err, "laio_config.max_inflight=2147483647 is more calls"), "%s", err);
	cr_expect(strstr(err, "LAIO_MAX_ACTIVATIONS=1000000 is more kernel threads"), "%s", err);
}

/* ---- no kernel thread to be had: said once ---- */

static void nothread_child(void)
{
	setenv("LAIO_MAX_ACTIVATIONS", "2", 1);
	nreads = 10;
	memset(&limit_out, 0, sizeof limit_out);
	if (with_detector(LAIO_DETECT_EAGER, reads_body, &limit_out) < 0)
		_exit(77);
	fprintf(stderr, "\nRESULT %d %lu %lu\n", limit_out.sync, limit_out.st.sync_at_limit,
		limit_out.st.sync_no_thread);
	_exit(0);
}

Test(limits, no_kernel_thread_said_once, .timeout = 60)
{
	SKIP_FORK_UNDER_TSAN();
	static char err[65536];
	int st = in_child(nothread_child, err, sizeof err);
	const char *res = strstr(err, "\nRESULT ");
	int sync = 0;
	unsigned long nsync = 0, nothread = 0;
	cr_assert(st == 0 && res && sscanf(res, "\nRESULT %d %lu %lu", &sync, &nsync,
					   &nothread) == 3, "child: %d %s", st, err);
	cr_expect_geq(nothread, 1, "eager with 2 kernel threads: calls ran synchronously");
	cr_expect_eq(nsync, nothread);
	cr_expect_eq(count_of(err, "(LAIO_MAX_ACTIVATIONS): calls that block run synchronously"), 1,
		     "said once: %s", err);
}

/* ---- LAIO_DETECTOR that cannot work here: the reason ---- */

static void upcall_nobody_child(void)
{
	if (setgid(65534) != 0 || setuid(65534) != 0)
		_exit(78);
	setenv("LAIO_DETECTOR", "upcall", 1);
	laio_syscall(SYS_getpid);
	fprintf(stderr, "\nRESULT %s\n", laio_detector_name(SYS_read));
	_exit(0);
}

Test(limits, unavailable_detector_says_why)
{
	SKIP_FORK_UNDER_TSAN();
	if (geteuid() != 0)
		cr_skip_test("needs root to become nobody");
	static char err[16384];
	int st = in_child(upcall_nobody_child, err, sizeof err);
	if (st == 78)
		cr_skip_test("cannot become nobody here");
	cr_assert_eq(st, 0, "%s", err);
	if (!strstr(err, "cannot work here"))
		cr_skip_test("the upcall detector works for nobody here (perf_event_paranoid <= 1)");
	cr_expect(strstr(err, "LAIO_DETECTOR=upcall cannot work here: perf_event_open: permission "
		  "denied"), "%s", err);
	cr_expect(strstr(err, "kernel.perf_event_paranoid is "), "the level is said: %s", err);
}

/* ---- timeline files ---- */

static char tl_paths[3][64];

static void *traced_thread(void *arg)
{
	struct laio_config c = { .trace_file = arg };
	long r = laio_init(&c);
	laio_syscall(SYS_getpid);
	return (void *)r;
}

static void three_files_child(void)
{
	pthread_t t[3];
	for (int i = 0; i < 3; i++)
		if (pthread_create(&t[i], NULL, traced_thread, tl_paths[i]) != 0)
			_exit(2);
	for (int i = 0; i < 3; i++) {
		void *r;
		pthread_join(t[i], &r);
		if (r)
			_exit(10 + i);
	}
	exit(0); /* atexit closes the files */
}

/* Regression: a third timeline file was never created, and laio_init() returned 0 silently. */
Test(limits, every_timeline_file_is_made)
{
	SKIP_FORK_UNDER_TSAN();
	for (int i = 0; i < 3; i++) {
		snprintf(tl_paths[i], sizeof tl_paths[i], "/tmp/laio-tl-%d-%d.json", (int)getpid(), i);
		unlink(tl_paths[i]);
	}
	static char err[4096];
	cr_assert_eq(in_child(three_files_child, err, sizeof err), 0, "%s", err);
	for (int i = 0; i < 3; i++) {
		char buf[64] = { 0 };
		FILE *f = fopen(tl_paths[i], "r");
		cr_expect_not_null(f, "timeline %d (%s) was made", i, tl_paths[i]);
		if (!f)
			continue;
		cr_expect(fread(buf, 1, sizeof buf - 1, f) > 0 && strstr(buf, "{\"traceEvents\":["),
			  "timeline %d is a trace: %s", i, buf);
		fclose(f);
		unlink(tl_paths[i]);
	}
}

static void long_path_child(void)
{
	static char path[5000];
	memset(path, 'a', sizeof path - 1);
	path[0] = '/';
	errno = 0;
	struct laio_config c = { .trace_file = path };
	int r = laio_init(&c);
	fprintf(stderr, "\nRESULT %d %d\n", r, errno);
	_exit(0);
}

/* Regression: a path of 4,096 bytes or more was dropped without a word. */
Test(limits, long_timeline_path_said)
{
	SKIP_FORK_UNDER_TSAN();
	static char err[16384];
	cr_assert_eq(in_child(long_path_child, err, sizeof err), 0, "%s", err);
	int r = 0, e = 0;
	const char *res = strstr(err, "\nRESULT ");
	cr_assert(res && sscanf(res, "\nRESULT %d %d", &r, &e) == 2, "%s", err);
	cr_expect(r == -1 && e == ENAMETOOLONG, "laio_init: %d %s", r, strerror(e));
	cr_expect(strstr(err, "cannot create the timeline /aaaa") &&
		  strstr(err, "(4999 bytes): File name too long"), "said, shortened: %s", err);
}
