/* test_badinput.c - bad input to every entry point of laio.h, under every detector where it
 * makes sense. Each bad input must get a clear errno (the one syscall() gives, for system
 * calls) and lose nothing: no handle left in flight, no completion lost or reported twice, no
 * byte of a pipe consumed by a call that failed, no hang.
 *
 * Each case logs one line "[detector] case: laio ... | syscall ..." (cr_log_info); the table
 * in docs/reliability.md is made of those lines.
 *
 * Tests named regress_* guard defects of the library that this suite found and that have been
 * fixed (docs/reliability.md, "Library defects found"). */
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include "test-util.h"
#include "sa.h"

/* ---- what a call gave ---- */

struct res {
	long r;   /* return value (the completion's, for a background call) */
	int e;    /* errno, 0 when r != -1 */
	int bg;   /* went to the background (EINPROGRESS, then one completion) */
	int lost; /* went to the background and no completion (or a wrong one) came */
};

static const char *ename(int e)
{
	const char *n = e ? strerrorname_np(e) : NULL;
	return n ? n : "0";
}

static void fmt_res(char *buf, size_t n, const struct res *x)
{
	if (x->lost)
		snprintf(buf, n, "%sNO COMPLETION", x->bg ? "bg -> " : "");
	else if (x->r == -1)
		snprintf(buf, n, "%s-1 %s", x->bg ? "bg -> " : "", ename(x->e));
	else
		snprintf(buf, n, "%s%ld", x->bg ? "bg -> " : "", x->r);
}

static bool same(const struct res *a, const struct res *b)
{
	return !a->lost && !b->lost && a->r == b->r && (a->r != -1 || a->e == b->e);
}

static __thread const char *det; /* the detector of the running worker, for the log */

/* Run a call through laio_syscall; if it goes to the background, wait for its completion
 * (it must be the handle laio_gethandle() named, and come exactly once). */
static struct res laio_run(long nr, long a0, long a1, long a2, long a3)
{
	struct res x = { 0 };
	errno = 0;
	long r = laio_syscall(nr, a0, a1, a2, a3, 0L, 0L);
	int e = errno;
	if (r == -1 && e == EINPROGRESS) {
		void *h = laio_gethandle();
		struct laio_completion c[2];
		x.bg = 1;
		if (!h || poll_n(c, 1, 10) != 1 || c[0].laio_handle != h) {
			x.lost = 1;
			return x;
		}
		x.r = c[0].laio_return_value;
		x.e = x.r == -1 ? c[0].laio_errno : 0;
		return x;
	}
	cr_expect_null(laio_gethandle(), "a call that did not go to the background has no handle");
	x.r = r;
	x.e = r == -1 ? e : 0;
	return x;
}

static struct res raw_run(long nr, long a0, long a1, long a2, long a3)
{
	struct res x = { 0 };
	errno = 0;
	x.r = syscall(nr, a0, a1, a2, a3, 0L, 0L);
	x.e = x.r == -1 ? errno : 0;
	return x;
}

/* Nothing in flight, nothing waiting to be reported. */
static void expect_clean(const char *what)
{
	struct laio_stats st;
	struct laio_completion c[4];
	struct timespec zero = { 0, 0 };
	laio_stats(&st);
	cr_expect_eq(st.in_flight, 0, "[%s] %s: %lu call(s) still in flight", det, what, st.in_flight);
	cr_expect_eq(laio_poll(c, 4, &zero), 0, "[%s] %s: an extra completion", det, what);
}

/* ---- pipes ---- */

static int pipe_bytes(int fd)
{
	int n = -1;
	ioctl(fd, FIONREAD, &n);
	return n;
}

/* Empty the pipe, then put `content` in it. */
static void pipe_set(int p[2], const char *content)
{
	char junk[256];
	int n;
	while ((n = pipe_bytes(p[0])) > 0)
		if (read(p[0], junk, (size_t)n > sizeof junk ? sizeof junk : (size_t)n) <= 0)
			break;
	if (*content)
		cr_expect_eq(write(p[1], content, strlen(content)), (ssize_t)strlen(content));
}

struct later {
	int fd;
	int ms;
	const char *data;
	pthread_t t;
};

static void *later_main(void *arg)
{
	struct later *l = arg;
	usleep((useconds_t)l->ms * 1000);
	if (write(l->fd, l->data, strlen(l->data)) < 0)
		cr_log_error("later write: %s", strerror(errno));
	return NULL;
}

/* Write `data` to fd `ms` milliseconds from now, from another (non-LAIO) thread. */
static void later_start(struct later *l, int fd, int ms, const char *data)
{
	*l = (struct later){ fd, ms, data, 0 };
	cr_expect_eq(pthread_create(&l->t, NULL, later_main, l), 0);
}

static void later_join(struct later *l)
{
	pthread_join(l->t, NULL);
}

/*
 * One system call on pipe p, made twice from the same starting state (the pipe holds `pre`;
 * with `late`, "abc" is written 50 ms after the call starts): once by syscall(), once by
 * laio_syscall(). The results and the bytes left in the pipe must be the same. Returns whether
 * they were; logs the line of the table either way.
 */
static bool compare(const char *what, int p[2], const char *pre, bool late, long nr, long a0,
		    long a1, long a2, long a3, struct res *out)
{
	struct later l;
	pipe_set(p, pre);
	if (late)
		later_start(&l, p[1], 50, "abc");
	struct res want = raw_run(nr, a0, a1, a2, a3);
	if (late)
		later_join(&l);
	int left_want = pipe_bytes(p[0]);

	pipe_set(p, pre);
	if (late)
		later_start(&l, p[1], 50, "abc");
	struct res got = laio_run(nr, a0, a1, a2, a3);
	if (late)
		later_join(&l);
	int left_got = pipe_bytes(p[0]);

	char g[64], w[64];
	fmt_res(g, sizeof g, &got);
	fmt_res(w, sizeof w, &want);
	cr_log_info("[%s] %-44s laio: %-22s syscall: %s", det, what, g, w);
	if (out)
		*out = got;
	expect_clean(what);
	return same(&got, &want) && left_got == left_want;
}

#define COMPARE(what, p, pre, late, nr, a0, a1, a2, a3)                                         \
	cr_expect(compare(what, p, pre, late, nr, (long)(a0), (long)(a1), (long)(a2), (long)(a3),  \
			  NULL),                                                                   \
		  "[%s] %s: laio_syscall differs from syscall()", det, what)

/* Addresses that are not ours to touch. */
static char *prot_none_page(void)
{
	static char *page;
	if (!page) {
		page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		cr_assert_neq(page, MAP_FAILED);
	}
	return page;
}
#define UNMAPPED ((void *)0x1000)                      /* below mmap_min_addr: never mapped */
#define KERNEL_ADDR ((void *)0xffff888000000000UL)     /* kernel half */
#define NONCANONICAL ((void *)0x0000800000000000UL)    /* the hole between the halves */

/* ---- per-detector runner ---- */

struct run {
	void (*fn)(int d);
	int d;
};

static void run_body(void *arg)
{
	struct run *r = arg;
	det = det_names[r->d];
	r->fn(r->d);
	expect_clean("end of body");
}

static void every_detector(void (*fn)(int d))
{
	for (int d = 0; d < LAIO_DETECT_COUNT; d++) {
		struct run r = { fn, d };
		with_detector(d, run_body, &r);
	}
}

/* ---- 1. unknown system call numbers: ENOSYS ---- */

static void unknown_body(int d)
{
	(void)d;
	int p[2];
	make_pipe(p);
	static const struct {
		const char *name;
		long nr;
		bool enosys;
	} nrs[] = {
		{ "syscall 999", 999, true },
		{ "syscall -1", -1, true },
		{ "syscall 100000", 100000, true },
		{ "syscall LONG_MAX", LONG_MAX, true },
		{ "syscall INT_MIN", INT_MIN, true },
		{ "syscall 512 (first past the route table)", 512, true },
		{ "syscall 511 (unassigned, in the table)", 511, true },
		{ "syscall 500 (unassigned, in the table)", 500, true },
		/* the kernel keeps the low 32 bits of the number: LONG_MIN is read(0, NULL, 0),
		   which returns 0; laio_syscall must do exactly the same */
		{ "syscall LONG_MIN (= read(0, NULL, 0))", LONG_MIN, false },
		{ "syscall (1L << 32) + SYS_getpid (= getpid())", (1L << 32) + SYS_getpid, false },
	};
	for (size_t i = 0; i < sizeof nrs / sizeof nrs[0]; i++) {
		struct res got;
		cr_expect(compare(nrs[i].name, p, "", false, nrs[i].nr, 0, 0, 0, 0, &got),
			  "[%s] %s", det, nrs[i].name);
		if (nrs[i].enosys)
			cr_expect(got.r == -1 && got.e == ENOSYS, "[%s] %s: want ENOSYS", det,
				  nrs[i].name);
	}
	close(p[0]);
	close(p[1]);
}

Test(badinput, unknown_syscall_is_enosys)
{
	every_detector(unknown_body);
}

/* ---- 2. bad descriptors: EBADF ---- */

static void badfd_body(int d)
{
	(void)d;
	int p[2], closed[2];
	char buf[8];
	make_pipe(p);
	make_pipe(closed);
	close(closed[0]);
	close(closed[1]);
	long fds[] = { -1, 9999, INT_MAX, closed[0], (long)INT_MAX + 1 };
	const char *names[] = { "fd -1", "fd 9999 (not open)", "fd INT_MAX", "a closed fd",
				"fd 1L << 31" };
	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) {
		char what[64];
		snprintf(what, sizeof what, "read(%s)", names[i]);
		COMPARE(what, p, "abc", false, SYS_read, fds[i], buf, 1, 0);
		snprintf(what, sizeof what, "write(%s)", names[i]);
		COMPARE(what, p, "", false, SYS_write, fds[i], "x", 1, 0);
		snprintf(what, sizeof what, "fsync(%s)", names[i]);
		COMPARE(what, p, "", false, SYS_fsync, fds[i], 0, 0, 0);
	}
	/* the wrong direction of a pipe: EBADF too */
	COMPARE("read(write end of a pipe)", p, "abc", false, SYS_read, p[1], buf, 1, 0);
	COMPARE("write(read end of a pipe)", p, "", false, SYS_write, p[0], "x", 1, 0);
	COMPARE("fsync(pipe) (EINVAL)", p, "", false, SYS_fsync, p[0], 0, 0, 0);
	close(p[0]);
	close(p[1]);
}

Test(badinput, bad_fd_is_ebadf)
{
	every_detector(badfd_body);
}

/* ---- 3. bad pointers: EFAULT from the kernel, never a crash ---- */

static void badptr_body(int d)
{
	(void)d;
	int p[2];
	make_pipe(p);
	char *none = prot_none_page();
	void *ptrs[] = { NULL, (void *)1, UNMAPPED, none, KERNEL_ADDR, NONCANONICAL };
	const char *names[] = { "NULL", "(void *)1", "0x1000 (unmapped)", "a PROT_NONE page",
				"a kernel address", "a non-canonical address" };
	for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++) {
		char what[96];
		snprintf(what, sizeof what, "read into %s, data present", names[i]);
		COMPARE(what, p, "abc", false, SYS_read, p[0], ptrs[i], 1, 0);
		snprintf(what, sizeof what, "write from %s", names[i]);
		COMPARE(what, p, "", false, SYS_write, p[1], ptrs[i], 1, 0);
		snprintf(what, sizeof what, "nanosleep(%s, NULL)", names[i]);
		COMPARE(what, p, "", false, SYS_nanosleep, ptrs[i], 0, 0, 0);
		struct timespec ts = { 0, 1000 * 1000 };
		snprintf(what, sizeof what, "nanosleep(1 ms, rem = %s)", names[i]);
		COMPARE(what, p, "", false, SYS_nanosleep, &ts, ptrs[i], 0, 0);
	}
	close(p[0]);
	close(p[1]);
}

Test(badinput, bad_pointer_is_efault)
{
	every_detector(badptr_body);
}

/* The call goes to the background first (the pipe is empty, or eager), and only then meets the
 * bad pointer: the completion carries EFAULT, the byte stays in the pipe. */
static void badptr_late_body(int d)
{
	(void)d;
	int p[2];
	make_pipe(p);
	char *none = prot_none_page();
	void *ptrs[] = { NULL, (void *)1, UNMAPPED, none, KERNEL_ADDR };
	const char *names[] = { "NULL", "(void *)1", "0x1000 (unmapped)", "a PROT_NONE page",
				"a kernel address" };
	for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++) {
		char what[96];
		struct res got;
		snprintf(what, sizeof what, "read into %s, empty pipe, data later", names[i]);
		cr_expect(compare(what, p, "", true, SYS_read, p[0], (long)ptrs[i], 1, 0, &got),
			  "[%s] %s", det, what);
		cr_expect(got.r == -1 && got.e == EFAULT, "[%s] %s: want EFAULT", det, what);
		cr_expect_eq(pipe_bytes(p[0]), 3, "[%s] %s: the data must stay in the pipe", det, what);
	}
	close(p[0]);
	close(p[1]);
}

Test(badinput, bad_pointer_after_going_background)
{
	every_detector(badptr_late_body);
}

/* ---- 4. negative and huge counts ---- */

static void counts_body(int d)
{
	int p[2];
	char buf[16];
	make_pipe(p);
	/* (size_t)-1 is negative as an iovec length: the probe declines it and read() says EFAULT */
	COMPARE("read(count (size_t)-1), data present", p, "abc", false, SYS_read, p[0], buf,
		(size_t)-1, 0);
	COMPARE("read(count (size_t)-1), empty, data later", p, "", true, SYS_read, p[0], buf,
		(size_t)-1, 0);
	COMPARE("read(count LONG_MIN), data present", p, "abc", false, SYS_read, p[0], buf,
		LONG_MIN, 0);
	COMPARE("write(count (size_t)-1)", p, "", false, SYS_write, p[1], buf, (size_t)-1, 0);
	COMPARE("write(count SSIZE_MAX)", p, "", false, SYS_write, p[1], buf, SSIZE_MAX, 0);
	COMPARE("pread64(offset -1)", p, "abc", false, SYS_pread64, p[0], buf, 1, -1);
	COMPARE("read(count 0), empty pipe", p, "", false, SYS_read, p[0], buf, 0, 0);
	/* Counts that are positive as ssize_t but run past the end of user space: read() checks
	   the whole range and says EFAULT (the probe once did not: regress_probe_huge_count_is_efault
	   below, with regular files too) */
	(void)d;
	COMPARE("read(count SSIZE_MAX), data present", p, "abc", false, SYS_read, p[0], buf,
		SSIZE_MAX, 0);
	COMPARE("read(count 1 << 47), data present", p, "abc", false, SYS_read, p[0], buf, 1L << 47,
		0);
	COMPARE("read(count SSIZE_MAX), empty, data later", p, "", true, SYS_read, p[0], buf,
		SSIZE_MAX, 0);
	close(p[0]);
	close(p[1]);
}

Test(badinput, negative_and_huge_counts)
{
	every_detector(counts_body);
}

/*
 * Regression (defect found here, fixed in b9fe72f; kernel-shim/probe.c, ks_probe_try, case
 * SYS_read / SYS_pread64). The probe tried read(fd, buf, count) as
 * preadv2(fd, {buf, count}, RWF_NOWAIT). The kernel clamps an iovec to
 * MAX_RW_COUNT before its access_ok() check, but read() and pread64() check
 * access_ok(buf, count) on the whole count first. So for a count that is positive as ssize_t
 * yet runs past the end of user space (SSIZE_MAX, 1 << 47), before the fix:
 *   - data present: laio_syscall returned the bytes where syscall() returns -1 EFAULT. On a
 *     regular file it read the whole file into the buffer: a caller that passed a count larger
 *     than its buffer got EFAULT from read(), and its memory overwritten from laio_syscall();
 *   - empty pipe:   laio_syscall returned EINPROGRESS (the call "would block") and completed
 *                   with EFAULT, where syscall() fails at once without blocking.
 * Under the upcall, watchdog and eager detectors the results always equalled syscall()'s.
 */
static void probe_huge_body(int d)
{
	(void)d;
	int p[2];
	char buf[16];
	struct res got;
	make_pipe(p);
	cr_expect(compare("read(count SSIZE_MAX), data present", p, "abc", false, SYS_read, p[0],
			  (long)buf, SSIZE_MAX, 0, &got),
		  "[%s] read(buf, SSIZE_MAX) with data present: laio_syscall gave %ld (errno %s), "
		  "syscall() gives -1 EFAULT", det, got.r, ename(got.e));
	cr_expect(compare("read(count 1 << 47), data present", p, "abc", false, SYS_read, p[0],
			  (long)buf, 1L << 47, 0, &got),
		  "[%s] read(buf, 1 << 47) with data present: laio_syscall gave %ld (errno %s), "
		  "syscall() gives -1 EFAULT", det, got.r, ename(got.e));
	pipe_set(p, "");
	got = laio_run(SYS_read, p[0], (long)buf, SSIZE_MAX, 0);
	cr_expect(!got.bg, "[%s] read(buf, SSIZE_MAX) of an empty pipe went to the background, "
		  "but read() fails at once with EFAULT (completion: %ld %s)", det, got.r,
		  ename(got.e));
	close(p[0]);
	close(p[1]);

	/* a regular file of 8 KiB, read into the start of a 64 KiB region */
	char path[] = "/tmp/laio-badinput-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	unlink(path);
	char *region = calloc(1, 1 << 16), page[8192];
	memset(page, 'F', sizeof page);
	cr_assert_eq(write(fd, page, sizeof page), (ssize_t)sizeof page);
	fsync(fd);
	struct {
		const char *what;
		long nr;
	} calls[] = { { "read(regular file, count SSIZE_MAX)", SYS_read },
		      { "pread64(regular file, count SSIZE_MAX)", SYS_pread64 } };
	for (size_t i = 0; i < 2; i++) {
		lseek(fd, 0, SEEK_SET);
		struct res want = raw_run(calls[i].nr, fd, (long)region, SSIZE_MAX, 0);
		lseek(fd, 0, SEEK_SET);
		memset(region, 0, 1 << 16);
		got = laio_run(calls[i].nr, fd, (long)region, SSIZE_MAX, 0);
		char g[64], w[64];
		fmt_res(g, sizeof g, &got);
		fmt_res(w, sizeof w, &want);
		cr_log_info("[%s] %-44s laio: %-22s syscall: %s", det, calls[i].what, g, w);
		cr_expect(same(&got, &want), "[%s] %s: laio_syscall read %ld bytes into the buffer "
			  "(errno %s) where syscall() fails with %s and writes nothing", det,
			  calls[i].what, got.r, ename(got.e), ename(want.e));
	}
	free(region);
	close(fd);
}

Test(badinput, regress_probe_huge_count_is_efault)
{
	struct run r = { probe_huge_body, LAIO_DETECT_PROBE };
	with_detector(LAIO_DETECT_PROBE, run_body, &r);
	r.d = LAIO_DETECT_AUTO;
	with_detector(LAIO_DETECT_AUTO, run_body, &r);
}

/*
 * Regression: a read whose count is over MAX_RW_COUNT (2 GiB - 4 KiB) but whose buffer range is
 * valid must go to the background when it blocks, as it does for read() (which checks the range,
 * then clamps the count and waits). The fix above first declined to probe such reads, and under
 * the probe detector a declined read runs synchronously; the probe now passes two iovecs so that
 * the kernel checks the whole range before it clamps (kernel-shim/probe.c).
 * Found by the fuzzer (test/fuzz): read(pipe, NULL, 0xbfbfbfbf) under probe hung the input.
 */
static void probe_big_body(int d)
{
	(void)d;
	int p[2];
	make_pipe(p);
	size_t big = 3UL << 30; /* a valid 3 GiB buffer: reserved, never touched but for 3 bytes */
	char *buf = mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS |
			 MAP_NORESERVE, -1, 0);
	cr_assert_neq(buf, MAP_FAILED);
	struct res got;
	cr_expect(compare("read(empty pipe, 3 GiB buffer, count 3 GiB)", p, "", true, SYS_read,
			  p[0], (long)buf, (long)big, 0, &got), "[%s] result differs from syscall()",
		  det);
	cr_expect(got.bg, "[%s] read(empty pipe, buf, 3 GiB) blocked the thread (%ld after the "
		  "data came) instead of going to the background: read() blocks there too", det,
		  got.r);
	munmap(buf, big);
	close(p[0]);
	close(p[1]);
}

Test(badinput, regress_probe_read_over_2gib_goes_to_background)
{
	struct run r = { probe_big_body, LAIO_DETECT_PROBE };
	with_detector(LAIO_DETECT_PROBE, run_body, &r);
	r.d = LAIO_DETECT_AUTO;
	with_detector(LAIO_DETECT_AUTO, run_body, &r);
}

/* ---- 5. invalid timespecs for nanosleep: EINVAL ---- */

static void timespec_body(int d)
{
	int p[2];
	make_pipe(p);
	struct timespec bad[] = {
		{ 0, 1000000000L }, { 0, -1 }, { -1, 0 }, { LONG_MIN, 0 }, { 0, LONG_MAX },
		{ 1, LONG_MIN },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char what[96];
		struct res got;
		snprintf(what, sizeof what, "nanosleep({%ld, %ld})", (long)bad[i].tv_sec,
			 bad[i].tv_nsec);
		cr_expect(compare(what, p, "", false, SYS_nanosleep, (long)&bad[i], 0, 0, 0, &got),
			  "[%s] %s", det, what);
		cr_expect(got.r == -1 && got.e == EINVAL, "[%s] %s: want EINVAL", det, what);
	}
	/* the longest valid sleep: goes to the background (where nanosleep can), and a cancel
	   ends it with EINTR */
	if (d != LAIO_DETECT_PROBE) {
		static struct timespec forever = { LONG_MAX, 999999999L };
		errno = 0;
		long r = laio_syscall(SYS_nanosleep, &forever, NULL);
		cr_expect(r == -1 && errno == EINPROGRESS, "[%s] nanosleep(LONG_MAX s): %ld %s", det,
			  r, strerror(errno));
		if (r == -1 && errno == EINPROGRESS) {
			void *h = laio_gethandle();
			usleep(20 * 1000);
			cr_expect_eq(laio_cancel(h), 0, "[%s] cancel: %s", det, strerror(errno));
			struct laio_completion c;
			cr_expect_eq(poll_n(&c, 1, 10), 1, "[%s] the cancelled sleep completes", det);
			cr_expect(c.laio_handle == h && c.laio_return_value == -1 &&
				  (c.laio_errno == EINTR || c.laio_errno == ECANCELED),
				  "[%s] cancelled sleep: %ld %s", det, c.laio_return_value,
				  ename(c.laio_errno));
			cr_log_info("[%s] %-44s -> bg, then laio_cancel: -1 %s", det,
				    "nanosleep({LONG_MAX, 999999999})", ename(c.laio_errno));
		}
	}
	expect_clean("nanosleep");
	close(p[0]);
	close(p[1]);
}

Test(badinput, nanosleep_invalid_timespec_is_einval)
{
	every_detector(timespec_body);
}

/* ---- 6. laio_poll: EINVAL, and the waiting completion is not lost ---- */

static void poll_body(int d)
{
	(void)d;
	int p[2];
	char b = 0;
	make_pipe(p);
	errno = 0;
	long r = laio_syscall(SYS_read, p[0], &b, 1);
	cr_expect(r == -1 && errno == EINPROGRESS, "[%s] read of an empty pipe: %ld %s", det, r,
		  strerror(errno));
	void *h = laio_gethandle();
	struct laio_completion c[4];
	struct timespec zero = { 0, 0 };
	struct {
		const char *what;
		struct laio_completion *arr;
		int n;
		struct timespec ts;
		bool use_ts;
	} bad[] = {
		{ "laio_poll(count -1)", c, -1, { 0, 0 }, true },
		{ "laio_poll(count INT_MIN)", c, INT_MIN, { 0, 0 }, true },
		{ "laio_poll(count -1, timeout NULL)", c, -1, { 0, 0 }, false },
		{ "laio_poll(NULL array, count 1)", NULL, 1, { 0, 0 }, true },
		{ "laio_poll(NULL array, count 1, NULL)", NULL, 1, { 0, 0 }, false },
		{ "laio_poll(tv_nsec 1000000000)", c, 4, { 0, 1000000000L }, true },
		{ "laio_poll(tv_nsec -1)", c, 4, { 0, -1 }, true },
		{ "laio_poll(tv_sec -1)", c, 4, { -1, 0 }, true },
		{ "laio_poll({LONG_MIN, LONG_MIN})", c, 4, { LONG_MIN, LONG_MIN }, true },
		{ "laio_poll(tv_nsec LONG_MAX)", c, 4, { 0, LONG_MAX }, true },
	};
	for (int round = 0; round < 2; round++) {
		/* round 0: the call is still running; round 1: it finished, not yet reported */
		if (round == 1) {
			cr_expect_eq(write(p[1], "x", 1), 1);
			int fd = laio_fd();
			struct pollfd pf = { fd, POLLIN, 0 };
			cr_expect_eq(poll(&pf, 1, 10000), 1, "[%s] laio_fd() becomes readable", det);
		}
		for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
			errno = 0;
			int n = laio_poll(bad[i].arr, bad[i].n, bad[i].use_ts ? &bad[i].ts : NULL);
			int e = errno;
			cr_expect(n == -1 && e == EINVAL, "[%s] %s: %d %s", det, bad[i].what, n,
				  strerror(e));
			if (round == 0)
				cr_log_info("[%s] %-44s -> %d %s", det, bad[i].what, n, ename(e));
		}
		/* a count of zero takes nothing */
		cr_expect_eq(laio_poll(NULL, 0, &zero), 0, "[%s] laio_poll(NULL, 0)", det);
		cr_expect_eq(laio_poll(c, 0, NULL), 0, "[%s] laio_poll(c, 0, NULL)", det);
	}
	int n = poll_n(c, 1, 10);
	cr_expect(n == 1 && c[0].laio_handle == h && c[0].laio_return_value == 1 && b == 'x',
		  "[%s] the completion survived the bad polls: %d, %ld", det, n,
		  c[0].laio_return_value);
	expect_clean("laio_poll");
	close(p[0]);
	close(p[1]);
}

Test(badinput, poll_bad_arguments_lose_nothing)
{
	every_detector(poll_body);
}

/*
 * Regression (defect found here, fixed in b9fe72f; laio/laio.c, laio_poll, which computed its
 * deadline as now_ns + (uint64_t)tv_sec * 1000000000u + tv_nsec in 64 bits): a valid but huge
 * timeout overflowed. With tv_sec = LONG_MAX (a common way to say "very long") the deadline
 * wrapped into the past and laio_poll returned 0 at once, as if the timeout had expired,
 * although a background call was in flight and completed 200 ms later. ppoll(), nanosleep()
 * and sem_timedwait() treat such timeouts as "practically forever".
 */
static void poll_huge_body(int d)
{
	(void)d;
	int p[2];
	char b = 0;
	make_pipe(p);
	struct timespec huge[] = { { LONG_MAX, 999999999L }, { 18446744074L, 0 } };
	for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
		errno = 0;
		long r = laio_syscall(SYS_read, p[0], &b, 1);
		cr_expect(r == -1 && errno == EINPROGRESS, "[%s] read of an empty pipe", det);
		struct later l;
		later_start(&l, p[1], 200, "y");
		double t0 = now_s();
		struct laio_completion c;
		int n = laio_poll(&c, 1, &huge[i]);
		double dt = now_s() - t0;
		later_join(&l);
		cr_log_info("[%s] laio_poll(timeout {%ld, %ld}), call completes after 200 ms -> %d "
			    "after %.3f s", det, (long)huge[i].tv_sec, huge[i].tv_nsec, n, dt);
		cr_expect(n == 1, "[%s] laio_poll(timeout {%ld s}) returned %d after %.3f s: it must "
			  "wait for the call that completes after 0.2 s", det, (long)huge[i].tv_sec,
			  n, dt);
		if (n != 1)
			cr_expect_eq(poll_n(&c, 1, 10), 1, "[%s] completion", det);
	}
	expect_clean("huge timeout");
	close(p[0]);
	close(p[1]);
}

Test(badinput, regress_poll_huge_timeout_waits)
{
	struct run r = { poll_huge_body, LAIO_DETECT_AUTO };
	with_detector(LAIO_DETECT_AUTO, run_body, &r);
	r.d = LAIO_DETECT_EAGER;
	with_detector(LAIO_DETECT_EAGER, run_body, &r);
}

/* ---- 7. laio_cancel: EINVAL for what is not a handle of ours, ENOENT once finished ---- */

struct foreign {
	void *h;
	bool use_laio_first; /* make the foreign thread a LAIO thread before it tries */
	int r, e;
};

static void *foreign_cancel(void *arg)
{
	struct foreign *f = arg;
	if (f->use_laio_first)
		laio_syscall(SYS_getppid);
	errno = 0;
	f->r = laio_cancel(f->h);
	f->e = errno;
	return NULL;
}

static int cancel_from_other_thread(void *h, bool laio_thread, int *e)
{
	struct foreign f = { h, laio_thread, 0, 0 };
	pthread_t t;
	cr_expect_eq(pthread_create(&t, NULL, foreign_cancel, &f), 0);
	pthread_join(t, NULL);
	*e = f.e;
	return f.r;
}

static void log_cancel(const char *what, int r, int e)
{
	cr_log_info("[%s] %-44s -> %d %s", det, what, r, r ? ename(e) : "");
}

#define CANCEL_EXPECT(what, ptr, want_errno)                                                   \
	do {                                                                                   \
		errno = 0;                                                                     \
		int r_ = laio_cancel(ptr);                                                     \
		int e_ = errno;                                                                \
		log_cancel(what, r_, e_);                                                      \
		cr_expect(r_ == -1 && e_ == (want_errno), "[%s] %s: %d %s, want %s", det,      \
			  what, r_, strerror(e_), ename(want_errno));                            \
	} while (0)

static void cancel_body(int d)
{
	(void)d;
	int p[2];
	static char b;
	make_pipe(p);
	/* before this thread has made any call: nothing is a handle */
	CANCEL_EXPECT("laio_cancel(NULL), no call made yet", NULL, EINVAL);
	errno = 0;
	long r = laio_syscall(SYS_read, p[0], &b, 1);
	cr_expect(r == -1 && errno == EINPROGRESS, "[%s] read of an empty pipe", det);
	char *h = laio_gethandle();
	int junk;
	CANCEL_EXPECT("laio_cancel(NULL)", NULL, EINVAL);
	CANCEL_EXPECT("laio_cancel(a stack address)", &junk, EINVAL);
	CANCEL_EXPECT("laio_cancel(a heap address)", p, EINVAL);
	CANCEL_EXPECT("laio_cancel((void *)1)", (void *)1, EINVAL);
	CANCEL_EXPECT("laio_cancel((void *)-1)", (void *)-1, EINVAL);
	CANCEL_EXPECT("laio_cancel(a kernel address)", KERNEL_ADDR, EINVAL);
	CANCEL_EXPECT("laio_cancel(handle + 1)", h + 1, EINVAL);
	CANCEL_EXPECT("laio_cancel(handle + 8)", h + 8, EINVAL);
	CANCEL_EXPECT("laio_cancel(handle - 1)", h - 1, EINVAL);
	int e;
	int rr = cancel_from_other_thread(h, true, &e);
	log_cancel("laio_cancel(another LAIO thread's handle)", rr, e);
	cr_expect(rr == -1 && e == EINVAL, "[%s] another thread's handle: %d %s", det, rr,
		  strerror(e));
	rr = cancel_from_other_thread(h, false, &e);
	log_cancel("laio_cancel(handle) from a non-LAIO thread", rr, e);
	cr_expect(rr == -1 && e == EINVAL, "[%s] from a non-LAIO thread: %d %s", det, rr,
		  strerror(e));
	/* none of that touched the call */
	struct laio_stats st;
	laio_stats(&st);
	cr_expect(st.in_flight == 1 && st.cancelled == 0, "[%s] in flight %lu, cancelled %lu", det,
		  st.in_flight, st.cancelled);

	/* finished but not reported yet: ENOENT, and the completion still carries the result */
	cr_expect_eq(write(p[1], "f", 1), 1);
	struct pollfd pf = { laio_fd(), POLLIN, 0 };
	cr_expect_eq(poll(&pf, 1, 10000), 1, "[%s] the call finishes", det);
	CANCEL_EXPECT("laio_cancel(finished, not yet reported)", h, ENOENT);
	struct laio_completion c;
	cr_expect_eq(poll_n(&c, 1, 10), 1, "[%s] completion", det);
	cr_expect(c.laio_handle == h && c.laio_return_value == 1 && b == 'f',
		  "[%s] the real result, not a cancellation: %ld %s", det, c.laio_return_value,
		  ename(c.laio_errno));
	/* reported: stale */
	CANCEL_EXPECT("laio_cancel(reported handle)", h, ENOENT);
	laio_stats(&st);
	cr_expect_eq(st.cancelled, 0, "[%s] no cancel took effect", det);

	/* cancelled twice: both calls succeed; one completion */
	errno = 0;
	r = laio_syscall(SYS_read, p[0], &b, 1);
	cr_expect(r == -1 && errno == EINPROGRESS, "[%s] read of an empty pipe", det);
	h = laio_gethandle();
	usleep(10 * 1000);
	int c1 = laio_cancel(h), c2 = laio_cancel(h);
	cr_log_info("[%s] %-44s -> %d, then %d", det, "laio_cancel(h) twice", c1, c2);
	cr_expect_eq(c1, 0, "[%s] first cancel: %s", det, strerror(errno));
	cr_expect(c2 == 0 || (c2 == -1 && errno == ENOENT), "[%s] second cancel: %d %s", det, c2,
		  strerror(errno));
	cr_expect_eq(poll_n(&c, 1, 10), 1, "[%s] the cancelled call completes once", det);
	cr_expect(c.laio_handle == h && c.laio_return_value == -1 &&
		  (c.laio_errno == EINTR || c.laio_errno == ECANCELED),
		  "[%s] cancelled: %ld %s", det, c.laio_return_value, ename(c.laio_errno));
	CANCEL_EXPECT("laio_cancel(cancelled and reported handle)", h, ENOENT);
	cr_expect_eq(pipe_bytes(p[0]), 0, "[%s] the cancelled read took no byte", det);
	expect_clean("laio_cancel");
	close(p[0]);
	close(p[1]);
}

Test(badinput, cancel_bad_handles)
{
	every_detector(cancel_body);
}

Test(badinput, cancel_from_thread_that_never_used_laio)
{
	int junk;
	errno = 0;
	cr_expect(laio_cancel(NULL) == -1 && errno == EINVAL);
	errno = 0;
	cr_expect(laio_cancel(&junk) == -1 && errno == EINVAL);
	struct laio_stats st;
	memset(&st, 0xff, sizeof st);
	laio_stats(&st);
	cr_expect(st.calls == 0 && st.in_flight == 0, "stats of a thread that never used LAIO");
}

/* ---- 8. laio_init: EINVAL for bad values, EBUSY with calls in flight ---- */

static void init_body(int d)
{
	int p[2];
	static char b;
	make_pipe(p);
	const char *before = laio_detector_name(SYS_nanosleep);
	struct {
		const char *what;
		int det;
		int max;
	} bad[] = {
		{ "detector 6", 6, 0 },
		{ "detector 100", 100, 0 },
		{ "detector -1", -1, 0 },
		{ "detector INT_MIN", INT_MIN, 0 },
		{ "detector INT_MAX", INT_MAX, 0 },
		{ "max_inflight -1", d, -1 },
		{ "max_inflight INT_MIN", d, INT_MIN },
		{ "detector 7 and max_inflight -3", 7, -3 },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct laio_config c = { .detector = (enum laio_detector)bad[i].det,
					 .max_inflight = bad[i].max };
		errno = 0;
		int r = laio_init(&c);
		int e = errno;
		cr_log_info("[%s] laio_init(%-34s) -> %d %s", det, bad[i].what, r, r ? ename(e) : "");
		cr_expect(r == -1 && e == EINVAL, "[%s] laio_init(%s): %d %s", det, bad[i].what, r,
			  strerror(e));
	}
	cr_expect_str_eq(laio_detector_name(SYS_nanosleep), before,
			 "[%s] a refused laio_init changes nothing", det);
	cr_expect_eq(laio_init(NULL), 0, "[%s] laio_init(NULL): nothing to change", det);

	/* calls in flight: EBUSY for any change, and the call is not disturbed */
	errno = 0;
	long r = laio_syscall(SYS_read, p[0], &b, 1);
	cr_expect(r == -1 && errno == EINPROGRESS, "[%s] read of an empty pipe", det);
	void *h = laio_gethandle();
	for (int nd = 0; nd < LAIO_DETECT_COUNT; nd++) {
		struct laio_config c = { .detector = nd, .max_inflight = 10 };
		errno = 0;
		int ri = laio_init(&c);
		int e = errno;
		if (nd == d)
			cr_log_info("[%s] laio_init(%-34s) -> %d %s", det, "same detector, 1 in flight",
				    ri, ri ? ename(e) : "");
		cr_expect(ri == -1 && e == EBUSY, "[%s] laio_init(%s) with a call in flight: %d %s",
			  det, det_names[nd], ri, strerror(e));
	}
	struct laio_config bad_and_busy = { .detector = 9 };
	errno = 0;
	cr_expect(laio_init(&bad_and_busy) == -1 && errno == EINVAL,
		  "[%s] a bad value is EINVAL even while busy", det);
	cr_expect_eq(laio_init(NULL), 0, "[%s] laio_init(NULL) while busy changes nothing", det);
	cr_expect_eq(write(p[1], "z", 1), 1);
	struct laio_completion c;
	cr_expect_eq(poll_n(&c, 1, 10), 1, "[%s] the call completes", det);
	cr_expect(c.laio_handle == h && c.laio_return_value == 1 && b == 'z', "[%s] result %ld", det,
		  c.laio_return_value);
	/* and once nothing is in flight, a change is accepted again */
	struct laio_config same_cfg = { .detector = d, .max_inflight = 100 };
	cr_expect_eq(laio_init(&same_cfg), 0, "[%s] laio_init once idle: %s", det, strerror(errno));
	expect_clean("laio_init");
	close(p[0]);
	close(p[1]);
}

Test(badinput, init_bad_values_and_busy)
{
	every_detector(init_body);
}

/* A detector that cannot work here is ENOTSUP, not a silent fallback: without privileges the
 * upcall detector has no perf event. Checked in a child that gives up root. */
Test(badinput, init_upcall_without_permission_is_enotsup)
{
#if defined(__SANITIZE_THREAD__)
	cr_skip_test("ThreadSanitizer does not support threads started after a fork() of a "
		     "multi-threaded process");
#endif
	if (geteuid() != 0) {
		struct laio_config c = { .detector = LAIO_DETECT_UPCALL };
		int r = laio_init(&c);
		cr_log_info("not root: laio_init(upcall) -> %d %s", r, r ? ename(errno) : "");
		return;
	}
	int fd = open("/proc/sys/kernel/perf_event_paranoid", O_RDONLY);
	char lvl[8] = "";
	if (fd >= 0) {
		if (read(fd, lvl, sizeof lvl - 1) < 0)
			lvl[0] = 0;
		close(fd);
	}
	if (atoi(lvl) <= 1) {
		cr_log_warn("perf_event_paranoid %d: everyone may use perf here; skipped", atoi(lvl));
		return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		if (setgid(65534) != 0 || setuid(65534) != 0)
			_exit(3);
		struct laio_config c = { .detector = LAIO_DETECT_UPCALL };
		errno = 0;
		int r = laio_init(&c);
		int ok = r == -1 && errno == ENOTSUP;
		/* and the thread still works with its previous detector */
		ok = ok && laio_syscall(SYS_getpid) == getpid();
		_exit(ok ? 0 : 1);
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) != 3, "could not drop privileges");
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		  "unprivileged laio_init(upcall) must fail with ENOTSUP (status %d)", st);
	cr_log_info("[uid 65534] laio_init(upcall)                   -> -1 ENOTSUP");
}

/* A bad LAIO_DETECTOR in the environment: the thread works, with the default detector. */
Test(badinput, bad_detector_in_environment)
{
	setenv("LAIO_DETECTOR", "no-such-detector", 1);
	setenv("LAIO_MAX_INFLIGHT", "-5", 1);
	errno = 0;
	cr_expect_eq(laio_syscall(SYS_getpid), getpid());
	const char *n = laio_detector_name(SYS_read);
	cr_log_info("LAIO_DETECTOR=no-such-detector, LAIO_MAX_INFLIGHT=-5: read uses %s", n);
	cr_expect_str_eq(n, sa_detector_available(SA_DETECT_IDLE, NULL) ? "idle" : "probe",
			 "the default (auto) detector for reads");
}

/* Numeric environment settings are parsed strictly: a value that is not wholly a number in
 * range is reported on stderr and the default is used (no atoi truncation: "2x" is not 2,
 * 4294967298 is not 2). Each value in a child, whose stderr is read back. */
static void env_value_in_child(const char *name, const char *value, char *out, size_t outsz)
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		dup2(p[1], 2);
		setenv(name, value, 1);
		_exit(laio_syscall(SYS_getpid) == getpid() ? 0 : 1);
	}
	close(p[1]);
	ssize_t n, got = 0;
	while ((n = read(p[0], out + got, outsz - 1 - (size_t)got)) > 0)
		got += n;
	out[got] = 0;
	close(p[0]);
	int st;
	waitpid(pid, &st, 0);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s=%s: the thread must still work", name,
		  value);
}

Test(badinput, numeric_environment_strict)
{
	SKIP_FORK_UNDER_TSAN();
	const char *names[] = { "LAIO_MAX_INFLIGHT", "LAIO_MAX_ACTIVATIONS" };
	const char *bad[] = { "-5", "0", "2x", "4294967298", "99999999999999999999", " ", "0x10" };
	char out[512];
	for (size_t i = 0; i < 2; i++) {
		for (size_t j = 0; j < sizeof bad / sizeof bad[0]; j++) {
			env_value_in_child(names[i], bad[j], out, sizeof out);
			cr_expect(strstr(out, "is not a number") != NULL,
				  "%s=%s: no warning (stderr: \"%s\")", names[i], bad[j], out);
		}
		env_value_in_child(names[i], "64", out, sizeof out);
		cr_expect(out[0] == 0, "%s=64 is good: nothing to say, got \"%s\"", names[i], out);
	}
}
