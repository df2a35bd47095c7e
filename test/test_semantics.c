/* test_semantics.c - what a background call means, under every detector: it holds the file its
 * descriptor named when laio_syscall() was called (as a call blocked in the kernel does), and
 * partial results are the kernel's (a pipe with less than asked, MSG_WAITALL). */
#include <sys/socket.h>
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
