/* test_semantics.c - what a background call means, under every detector: it holds the file its
 * descriptor named when laio_syscall() was called (as a call blocked in the kernel does), and
 * partial results are the kernel's (a pipe with less than asked, MSG_WAITALL). */
#include <sys/socket.h>
#include <sys/resource.h>
#include "test-util.h"
#include "sa.h"

static void *write_after(void *arg)
{
	int fd = (int)(long)arg;
	usleep(30000);
	cr_expect_eq(write(fd, "abc", 3), 3);
	return NULL;
}

enum { KEEP, DUP2_ZERO, CLOSE };
static const char *const what_names[] = { "untouched", "dup2(/dev/zero) over it", "closed" };

struct fd_case {
	int what;
	int bg, good;
};

/* read(pipe) goes to the background; then the caller reuses or closes the descriptor; the
 * background read must still read the pipe. */
static void fd_body(void *arg)
{
	struct fd_case *c = arg;
	int p[2];
	make_pipe(p);
	char buf[8] = { 1, 1, 1, 1 };
	pthread_t t;
	pthread_create(&t, NULL, write_after, (void *)(long)p[1]);
	long r = laio_syscall(SYS_read, p[0], buf, 3);
	int e = errno;
	if (r == -1 && e == EINPROGRESS) {
		c->bg = 1;
		if (c->what == DUP2_ZERO) {
			int z = open("/dev/zero", O_RDONLY | O_CLOEXEC);
			cr_assert_geq(z, 0);
			dup2(z, p[0]);
			close(z);
		} else if (c->what == CLOSE) {
			close(p[0]);
		}
		struct laio_completion done;
		EXPECT(poll_n(&done, 1, 10) == 1, "no completion");
		r = done.laio_return_value;
		e = done.laio_errno;
	}
	pthread_join(t, NULL);
	c->good = r == 3 && memcmp(buf, "abc", 3) == 0;
	cr_expect(c->good, "[descriptor %s] read %ld (%s), buffer \"%.3s\"",
		  what_names[c->what], r, r < 0 ? strerror(e) : "", buf);
	if (c->what != CLOSE)
		close(p[0]);
	close(p[1]);
}

Test(semantics, background_call_holds_its_file)
{
	for (int d = 0; d < LAIO_DETECT_COUNT; d++)
		for (int w = KEEP; w <= CLOSE; w++) {
			struct fd_case c = { w, 0, 0 };
			if (with_detector(d, fd_body, &c) < 0)
				break;
			cr_log_info("descriptor lifetime [%s, %s]: %s, %s", det_names[d],
				    what_names[w], c.bg ? "background" : "synchronous",
				    c.good ? "read the pipe" : "WRONG");
			cr_expect(c.good, "[%s] descriptor %s after EINPROGRESS", det_names[d],
				  what_names[w]);
		}
}

/* Less than asked: a pipe holding 3 bytes, read of 10 -> 3, at once, under every detector (it
 * does not block, so it must not go to the background); a stream socket with MSG_WAITALL waits
 * for all it asked. */
static void partial_body(void *arg)
{
	int *bad = arg;
	int p[2];
	make_pipe(p);
	char buf[16];
	cr_expect_eq(write(p[1], "xyz", 3), 3);
	long r = laio_syscall(SYS_read, p[0], buf, 10);
	if (r != 3) {
		bool moved = r == -1 && errno == EINPROGRESS;
		struct laio_completion c;
		if (moved && poll_n(&c, 1, 10) == 1)
			r = c.laio_return_value;
		if (!moved || r != 3)
			(*bad)++;
	}
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_expect_eq(write(sv[1], "12", 2), 2);
	pthread_t t;
	pthread_create(&t, NULL, write_after, (void *)(long)sv[1]);
	r = laio_syscall(SYS_recvfrom, sv[0], buf, 5, MSG_WAITALL, NULL, NULL);
	if (r == -1 && errno == EINPROGRESS) {
		struct laio_completion c;
		r = poll_n(&c, 1, 10) == 1 ? c.laio_return_value : -1;
	}
	pthread_join(t, NULL);
	if (r != 5 || memcmp(buf, "12abc", 5) != 0)
		(*bad)++;
	close(sv[0]);
	close(sv[1]);
	close(p[0]);
	close(p[1]);
}

/* A regular file only partly in the page cache: a read of all of it returns all of it. */
static int cached_part_fd = -1;
#define BIG (16 << 20)

static long laio_result(long r)
{
	if (r == -1 && errno == EINPROGRESS) {
		struct laio_completion c;
		return poll_n(&c, 1, 30) == 1 ? c.laio_return_value : -2;
	}
	return r;
}

static void partly_cached_body(void *arg)
{
	int *bad = arg;
	static char buf[BIG];
	for (int k = 0; k < 2; k++) {
		/* evict the file, then bring its first 64 KiB back */
		fdatasync(cached_part_fd);
		posix_fadvise(cached_part_fd, 0, 0, POSIX_FADV_DONTNEED);
		cr_expect_eq(pread(cached_part_fd, buf, 65536, 0), 65536);
		long r;
		if (k == 0) {
			r = laio_result(laio_syscall(SYS_pread64, cached_part_fd, buf, BIG, 0));
		} else {
			lseek(cached_part_fd, 0, SEEK_SET);
			r = laio_result(laio_syscall(SYS_read, cached_part_fd, buf, BIG));
			if (lseek(cached_part_fd, 0, SEEK_CUR) != BIG)
				(*bad)++; /* the file position moved by what was read */
		}
		if (r != BIG)
			(*bad)++;
	}
}

/* A stream socket with SO_RCVLOWAT 10 and 5 bytes queued: read and recvfrom wait for 10. */
static void *write_five_later(void *arg)
{
	usleep(30000);
	cr_expect_eq(write((int)(long)arg, "67890", 5), 5);
	return NULL;
}

static void lowat_body(void *arg)
{
	int *bad = arg;
	for (int k = 0; k < 2; k++) {
		int sv[2], lowat = 10;
		char buf[16];
		cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		cr_assert_eq(setsockopt(sv[0], SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat), 0);
		cr_expect_eq(write(sv[1], "12345", 5), 5);
		pthread_t t;
		pthread_create(&t, NULL, write_five_later, (void *)(long)sv[1]);
		long r = k == 0 ? laio_syscall(SYS_recvfrom, sv[0], buf, sizeof buf, 0, NULL, NULL)
				: laio_syscall(SYS_read, sv[0], buf, sizeof buf);
		r = laio_result(r);
		pthread_join(t, NULL);
		if (r != 10 || memcmp(buf, "1234567890", 10) != 0)
			(*bad)++;
		close(sv[0]);
		close(sv[1]);
	}
}

Test(semantics, partial_results_file_and_rcvlowat, .timeout = 120)
{
	char path[] = "/tmp/laio-partial-XXXXXX";
	cached_part_fd = mkstemp(path);
	cr_assert_geq(cached_part_fd, 0);
	unlink(path);
	static char chunk[1 << 20];
	memset(chunk, 'p', sizeof chunk);
	for (int i = 0; i < BIG / (1 << 20); i++)
		cr_assert_eq(write(cached_part_fd, chunk, sizeof chunk), (ssize_t)sizeof chunk);
	for (int d = 0; d < LAIO_DETECT_COUNT; d++) {
		int bad_file = 0, bad_sock = 0;
		if (with_detector(d, partly_cached_body, &bad_file) < 0)
			continue;
		with_detector(d, lowat_body, &bad_sock);
		cr_log_info("partial results [%s]: partly cached file %d mismatch(es), SO_RCVLOWAT %d",
			    det_names[d], bad_file, bad_sock);
		cr_expect_eq(bad_file, 0, "[%s] a read of a partly cached file came back short",
			     det_names[d]);
		cr_expect_eq(bad_sock, 0, "[%s] SO_RCVLOWAT was not waited for", det_names[d]);
	}
	close(cached_part_fd);
}

Test(semantics, partial_results_are_the_kernels)
{
	for (int d = 0; d < LAIO_DETECT_COUNT; d++) {
		int bad = 0;
		if (with_detector(d, partial_body, &bad) < 0)
			continue;
		cr_log_info("partial results [%s]: %d mismatch(es)", det_names[d], bad);
		cr_expect_eq(bad, 0, "[%s] a partial result differs from syscall()'s", det_names[d]);
	}
}

/* Calls that depend on the calling kernel thread are never moved, and answer for the flow's
 * kernel thread exactly as syscall() does, before and after a handoff (under eager every other
 * call is moved). The list is the kernel's table, classified in activation/calls.c. */
struct tb { int bad, moved; };

static void thread_bound_body(void *arg)
{
	struct tb *t = arg;
	char a[128], b[128];
	struct timespec ts;
	long sa = 0, sb = 0;
	for (int round = 0; round < 2; round++) {
		long r;
		/* readlink("/proc/thread-self") names the kernel thread that runs the call */
		memset(a, 0, sizeof a);
		memset(b, 0, sizeof b);
		r = laio_syscall(SYS_readlink, "/proc/thread-self", a, sizeof a - 1);
		if (r == -1 && errno == EINPROGRESS)
			t->moved++;
		syscall(SYS_readlink, "/proc/thread-self", b, sizeof b - 1);
		if (strcmp(a, b) != 0)
			t->bad++;
		r = laio_syscall(SYS_rt_sigpending, &sa, 8);
		syscall(SYS_rt_sigpending, &sb, 8);
		if (r != 0 || sa != sb)
			t->bad++;
		r = laio_syscall(SYS_clock_gettime, CLOCK_THREAD_CPUTIME_ID, &ts);
		if (r != 0)
			t->bad++;
		void *head = NULL, *h2 = NULL;
		size_t len = 0;
		r = laio_syscall(SYS_get_robust_list, 0, &head, &len);
		syscall(SYS_get_robust_list, 0, &h2, &len);
		if (r != 0 || head != h2)
			t->bad++;
		r = laio_syscall(SYS_getpriority, 0, 0);
		if (r != syscall(SYS_getpriority, 0, 0))
			t->bad++;
		r = laio_syscall(SYS_sched_getscheduler, 0);
		if (r != syscall(SYS_sched_getscheduler, 0))
			t->bad++;
		unsigned c1 = 99, c2 = 98;
		r = laio_syscall(SYS_getcpu, &c1, NULL, NULL);
		if (r != 0 || c1 > 4096)
			t->bad++;
		(void)c2;
		struct rusage ru;
		r = laio_syscall(SYS_getrusage, RUSAGE_THREAD, &ru);
		if (r != 0)
			t->bad++;
		/* a handoff between the rounds: the flow moves to another kernel thread */
		int p[2];
		make_pipe(p);
		pthread_t w;
		pthread_create(&w, NULL, write_after, (void *)(long)p[1]);
		char c[4];
		if (laio_syscall(SYS_read, p[0], c, 3) == -1 && errno == EINPROGRESS) {
			struct laio_completion done;
			poll_n(&done, 1, 10);
		}
		pthread_join(w, NULL);
		close(p[0]);
		close(p[1]);
	}
}

Test(semantics, thread_bound_calls_answer_for_the_flows_thread)
{
	for (int d = 0; d < LAIO_DETECT_COUNT; d++) {
		struct tb t = { 0, 0 };
		if (with_detector(d, thread_bound_body, &t) < 0)
			continue;
		cr_log_info("thread-bound calls [%s]: %d mismatch(es), %d moved", det_names[d], t.bad,
			    t.moved);
		cr_expect_eq(t.bad, 0, "[%s] a thread-bound call answered for another thread",
			     det_names[d]);
		cr_expect_eq(t.moved, 0, "[%s] a thread-bound call was moved", det_names[d]);
	}
}

/* Every number in the kernel's table has a class; the classes the tests rely on are right. */
Test(semantics, every_system_call_is_classified)
{
	FILE *f = fopen("/usr/include/x86_64-linux-gnu/asm/unistd_64.h", "r");
	if (!f)
		f = fopen("/usr/include/asm/unistd_64.h", "r");
	if (!f)
		cr_skip_test("the kernel's system call table (asm/unistd_64.h) is not installed");
	char line[256], name[128];
	long nr;
	int n = 0, counts[4] = { 0 };
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "#define __NR_%127s %ld", name, &nr) == 2) {
			int c = sa_call_class(nr);
			cr_expect(c >= SA_CALL_ANY && c <= SA_CALL_ARGS, "%s: class %d", name, c);
			if (c >= 0 && c < 4)
				counts[c]++;
			n++;
		}
	fclose(f);
	cr_log_info("%d system calls: %d may move, %d direct, %d thread-bound, %d by argument", n,
		    counts[SA_CALL_ANY], counts[SA_CALL_DIRECT], counts[SA_CALL_THREAD],
		    counts[SA_CALL_ARGS]);
	cr_expect_gt(n, 300, "the table was read");
	cr_expect_eq(sa_call_class(SYS_gettid), SA_CALL_THREAD);
	cr_expect_eq(sa_call_class(SYS_rt_sigpending), SA_CALL_THREAD);
	cr_expect_eq(sa_call_class(SYS_exit), SA_CALL_DIRECT);
	cr_expect_eq(sa_call_class(SYS_read), SA_CALL_ANY);
	long thread_clock[6] = { CLOCK_THREAD_CPUTIME_ID };
	long proc_clock[6] = { CLOCK_MONOTONIC };
	cr_expect(sa_call_thread_bound(SYS_clock_gettime, thread_clock));
	cr_expect(!sa_call_thread_bound(SYS_clock_gettime, proc_clock));
}

/*
 * The differential test of the whole table: every system call number that is safe to call in a
 * test process, with two argument cases that fail early (every argument -1: a bad descriptor, a
 * bad pointer, an invalid count or flag; and descriptor 9999, not open, with the rest -1),
 * through syscall() and laio_syscall() under every detector: the result and errno must be the
 * same (a call that went to the background: its completion's). Not called: calls that end,
 * replace or clone the thread or process, that wait for ever whatever their arguments (pause),
 * that change the process for good even with these arguments (umask, alarm, set_tid_address,
 * setsid, vhangup), and that create a descriptor for any argument (inotify_init, eventfd).
 */
static bool differential_skip(long nr)
{
	switch (nr) {
	case SYS_exit: case SYS_exit_group: case SYS_execve: case SYS_execveat: case SYS_fork:
	case SYS_vfork: case SYS_clone: case SYS_clone3: case SYS_rt_sigreturn: case SYS_pause:
	case SYS_umask: case SYS_alarm: case SYS_set_tid_address: case SYS_setsid: case SYS_vhangup:
	case SYS_inotify_init: case SYS_eventfd: case SYS_restart_syscall: case SYS_sync:
	case SYS_rt_sigsuspend: case SYS_msgget: case SYS_semget: case SYS_shmget:
	case SYS_personality: case SYS_epoll_create:
	/* set*id(9999) as root succeeds and drops the calling thread's privileges for good */
	case SYS_setuid: case SYS_setgid: case SYS_setreuid: case SYS_setregid: case SYS_setresuid:
	case SYS_setresgid: case SYS_setfsuid: case SYS_setfsgid: case SYS_setgroups: case SYS_capset:
		return true;
	}
	return false;
}

struct diff { long nrs[512]; int n; int cases, mismatches, background; char first[256]; };

static void differential_body(void *arg)
{
	struct diff *df = arg;
	for (int k = 0; k < df->n; k++) {
		long nr = df->nrs[k];
		for (int c = 0; c < 2; c++) {
			long a0 = c == 0 ? -1 : 9999;
			errno = 0;
			long want = syscall(nr, a0, -1L, -1L, -1L, -1L, -1L);
			int we = want == -1 ? errno : 0;
			errno = 0;
			long got = laio_syscall(nr, a0, -1L, -1L, -1L, -1L, -1L);
			int ge = got == -1 ? errno : 0;
			if (got == -1 && ge == EINPROGRESS) {
				struct laio_completion done;
				df->background++;
				if (poll_n(&done, 1, 10) != 1) {
					got = -2;
				} else {
					got = done.laio_return_value;
					ge = got == -1 ? done.laio_errno : 0;
				}
			}
			df->cases++;
			if (got != want || ge != we) {
				if (getenv("DIFF_TRACE"))
					fprintf(stderr, "mismatch: call %ld case %d: syscall %ld %s, "
						"laio %ld %s\n", nr, c, want, strerror(we), got,
						strerror(ge));
				if (!df->mismatches)
					snprintf(df->first, sizeof df->first,
						 "call %ld case %d: syscall %ld %s, laio %ld %s", nr, c,
						 want, strerror(we), got, strerror(ge));
				df->mismatches++;
			}
		}
	}
}

Test(semantics, differential_every_call_number, .timeout = 240)
{
	FILE *f = fopen("/usr/include/x86_64-linux-gnu/asm/unistd_64.h", "r");
	if (!f)
		f = fopen("/usr/include/asm/unistd_64.h", "r");
	if (!f)
		cr_skip_test("the kernel's system call table (asm/unistd_64.h) is not installed");
	static struct diff df;
	char line[256], name[128];
	long nr;
	df.n = 0;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "#define __NR_%127s %ld", name, &nr) == 2 && !differential_skip(nr) &&
		    df.n < 512)
			df.nrs[df.n++] = nr;
	fclose(f);
	for (int d = 0; d < LAIO_DETECT_COUNT; d++) {
		df.cases = df.mismatches = df.background = 0;
		df.first[0] = 0;
		if (with_detector(d, differential_body, &df) < 0)
			continue;
		cr_log_info("differential [%s]: %d call numbers, %d cases, %d mismatches, %d went to "
			    "the background%s%s", det_names[d], df.n, df.cases, df.mismatches,
			    df.background, df.mismatches ? "; first: " : "", df.first);
		cr_expect_eq(df.mismatches, 0, "[%s] %d mismatches; first: %s", det_names[d],
			     df.mismatches, df.first);
	}
}

/* ---- a signal sent to the thread before its call went to the background ---- */

static volatile sig_atomic_t usr1_taken;

static void on_usr1(int sig)
{
	(void)sig;
	usr1_taken++;
}

struct pending_case {
	int bg, handled, pending_after;
};

/* Regression: SIGUSR1 sent with pthread_kill while the thread blocked it stayed pending on the
 * kernel thread that ran the call in the background (which blocks everything as a spare after
 * it): unblocking it in the flow afterwards ran no handler. It is now carried to the VP's kernel
 * thread when that call returns. */
static void pending_body(void *arg)
{
	struct pending_case *pc = arg;
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);
	usr1_taken = 0;
	pthread_kill(pthread_self(), SIGUSR1);
	int p[2];
	make_pipe(p);
	pthread_t t;
	pthread_create(&t, NULL, write_after, (void *)(long)p[1]);
	char buf[4];
	long r = laio_syscall(SYS_read, p[0], buf, 3);
	if (r == -1 && errno == EINPROGRESS) {
		struct laio_completion done;
		pc->bg = 1;
		EXPECT(poll_n(&done, 1, 10) == 1, "no completion");
	}
	pthread_join(t, NULL);
	sigset_t now;
	sigpending(&now);
	pc->pending_after = sigismember(&now, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);
	for (int i = 0; i < 1000 && !usr1_taken; i++)
		usleep(1000);
	pc->handled = usr1_taken;
	close(p[0]);
	close(p[1]);
}

Test(semantics, pending_signal_follows_the_flow)
{
	struct sigaction sa = { 0 }, old;
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, &old);
	for (int d = 0; d < LAIO_DETECT_COUNT; d++) {
		struct pending_case pc = { 0 };
		if (with_detector(d, pending_body, &pc) < 0)
			continue;
		cr_log_info("[%s] background %d, pending after the call %d, handler runs %d",
			    det_names[d], pc.bg, pc.pending_after, pc.handled);
		cr_expect(pc.pending_after, "[%s] SIGUSR1 pending for the flow after its call",
			  det_names[d]);
		cr_expect_eq(pc.handled, 1, "[%s] the handler ran once when the flow unblocked it",
			     det_names[d]);
	}
	sigaction(SIGUSR1, &old, NULL);
}
