/* movedfd-util.h - shared by test_movedfd.c and test_movedcalls.c: a file, a FIFO and a pipe,
 * the calls made on them under each detector, and one Criterion test per detector. */
#ifndef MOVEDFD_UTIL_H
#define MOVEDFD_UTIL_H

#include <sys/file.h>
#include <sys/stat.h>
#include "test-util.h"
#include "sa.h"

#define FILE_SIZE 65536

struct env {
	char path[64];  /* a regular file of FILE_SIZE bytes */
	char fifo[80];
	int fd;         /* the file, O_RDWR */
	int ffd;        /* the FIFO, O_RDWR: opening it does not wait for a peer */
	int pipe[2];
	int probe[2];   /* other open file descriptions of the file and the FIFO */
	int d;
	int bg;         /* calls that went to the background */
};

static inline void env_open(struct env *e)
{
	snprintf(e->path, sizeof e->path, "/tmp/laio-movedfd-%d-XXXXXX", getpid());
	e->fd = mkostemp(e->path, O_CLOEXEC);
	cr_assert_geq(e->fd, 0);
	static char block[FILE_SIZE];
	memset(block, 'a', sizeof block);
	cr_assert_eq(write(e->fd, block, sizeof block), FILE_SIZE);
	snprintf(e->fifo, sizeof e->fifo, "%s.fifo", e->path);
	cr_assert_eq(mkfifo(e->fifo, 0600), 0, "mkfifo: %s", strerror(errno));
	e->ffd = open(e->fifo, O_RDWR | O_CLOEXEC);
	cr_assert_geq(e->ffd, 0);
	make_pipe(e->pipe);
	e->probe[0] = open(e->path, O_RDWR | O_CLOEXEC);
	e->probe[1] = open(e->fifo, O_RDWR | O_CLOEXEC);
}

static inline void env_close(struct env *e)
{
	close(e->fd);
	close(e->ffd);
	close(e->pipe[0]);
	close(e->pipe[1]);
	close(e->probe[0]);
	close(e->probe[1]);
	unlink(e->path);
	unlink(e->fifo);
}

/* The pages of the file leave the page cache: a read of them blocks on the disk (the probe
 * detector sees it would, and moves the read). */
static inline void evict(int fd)
{
	fdatasync(fd);
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
}

/* The writer of a call that blocks on a pipe or FIFO. No assertion here: Criterion's
 * reporting may open a descriptor for a moment, and the numbers are what is tested. */
static inline void *write_later(void *arg)
{
	usleep(30000);
	return (void *)write((int)(long)arg, "abc", 3);
}

/* The result of a laio_syscall() that returned r with errno e: its completion, if it went to
 * the background. */
static inline long finish(struct env *env, long r, int e, int *err)
{
	*err = e;
	if (r != -1 || e != EINPROGRESS)
		return r;
	env->bg++;
	struct laio_completion c;
	if (poll_n(&c, 1, 10) != 1) {
		*err = ETIMEDOUT;
		return -1;
	}
	*err = c.laio_errno;
	return c.laio_return_value;
}

/* One call under test, made on descriptor fd of env. */
enum call_id { C_READ_FIFO, C_READ_PIPE, C_READ_EVICTED, C_PREAD_EVICTED, C_READ, C_PREAD,
	       C_WRITE, C_PWRITE, C_FSTAT, C_FSYNC, C_FDATASYNC, C_LSEEK, C_FLOCK_SH, C_COUNT };
static const char *const call_names[] = {
	"read(FIFO, blocks)", "read(pipe, blocks)", "read(evicted)", "pread64(evicted)", "read", "pread64", "write",
	"pwrite64", "fstat", "fsync", "fdatasync", "lseek", "flock(LOCK_SH)" };

/* The descriptor call c is made on. */
static inline int call_fd(const struct env *env, int c)
{
	return c == C_READ_FIFO ? env->ffd : c == C_READ_PIPE ? env->pipe[0] : env->fd;
}

/* Make call `c`: the raw laio_syscall() result (errno in *e), so the caller may act on the
 * descriptor between EINPROGRESS and the completion. */
static inline long start_call(struct env *env, int c, char *buf, pthread_t *writer, int *e)
{
	static struct stat st;
	int fd = call_fd(env, c);
	long r = -1;
	*writer = 0;
	if (c == C_READ_EVICTED || c == C_PREAD_EVICTED)
		evict(fd);
	if (c == C_READ || c == C_READ_EVICTED)
		lseek(fd, 0, SEEK_SET);
	switch (c) {
	case C_READ_FIFO:
		pthread_create(writer, NULL, write_later, (void *)(long)env->ffd);
		r = laio_syscall(SYS_read, fd, buf, 3);
		break;
	case C_READ_PIPE:
		pthread_create(writer, NULL, write_later, (void *)(long)env->pipe[1]);
		r = laio_syscall(SYS_read, fd, buf, 3);
		break;
	case C_READ: case C_READ_EVICTED: r = laio_syscall(SYS_read, fd, buf, 3); break;
	case C_PREAD: case C_PREAD_EVICTED: r = laio_syscall(SYS_pread64, fd, buf, 3, 4096); break;
	case C_WRITE: r = laio_syscall(SYS_write, fd, "aaa", 3); break;
	case C_PWRITE: r = laio_syscall(SYS_pwrite64, fd, "aaa", 3, 0); break;
	case C_FSTAT: r = laio_syscall(SYS_fstat, fd, &st); break;
	case C_FSYNC: r = laio_syscall(SYS_fsync, fd); break;
	case C_FDATASYNC: r = laio_syscall(SYS_fdatasync, fd); break;
	case C_LSEEK: r = laio_syscall(SYS_lseek, fd, 0, SEEK_SET); break;
	case C_FLOCK_SH: r = laio_syscall(SYS_flock, fd, LOCK_SH); break;
	}
	*e = errno;
	return r;
}

static inline long expected(int c)
{
	switch (c) {
	case C_READ_FIFO: case C_READ_PIPE: case C_READ_EVICTED: case C_PREAD_EVICTED:
	case C_READ: case C_PREAD: case C_WRITE: case C_PWRITE:
		return 3;
	}
	return 0;
}

/* Make call c and wait for its result; it must be the call's. */
static inline bool run_call(struct env *env, int c)
{
	char buf[8];
	pthread_t writer;
	int e;
	long r = start_call(env, c, buf, &writer, &e);
	r = finish(env, r, e, &e);
	if (writer)
		pthread_join(writer, NULL);
	if (c == C_FLOCK_SH)
		flock(env->fd, LOCK_UN);
	cr_expect_eq(r, expected(c), "[%s] %s: %ld (%s)", det_names[env->d], call_names[c], r,
		     r < 0 ? strerror(e) : "");
	return r == expected(c);
}

/* The number the next open() gets. */
static inline int lowest_free_number(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	close(fd);
	return fd;
}

static inline void run_under(int d, void (*body)(void *))
{
	const char *why = "";
	if (!sa_detector_available(d, &why))
		cr_skip_test("detector %s is not available here: %s", det_names[d], why);
	struct env env = { .d = d };
	env_open(&env);
	cr_assert_eq(with_detector(d, body, &env), 0);
	cr_log_info("[%s] %d calls went to the background", det_names[d], env.bg);
	env_close(&env);
}

#define PER_DETECTOR(name, body)                                                               \
	Test(movedfd, name##_auto) { run_under(LAIO_DETECT_AUTO, body); }                      \
	Test(movedfd, name##_idle) { run_under(LAIO_DETECT_IDLE, body); }                      \
	Test(movedfd, name##_upcall) { run_under(LAIO_DETECT_UPCALL, body); }                  \
	Test(movedfd, name##_probe) { run_under(LAIO_DETECT_PROBE, body); }                    \
	Test(movedfd, name##_watchdog) { run_under(LAIO_DETECT_WATCHDOG, body); }              \
	Test(movedfd, name##_eager) { run_under(LAIO_DETECT_EAGER, body); }

#endif
