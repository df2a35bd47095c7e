/* test_movedfd.c - a call in the background leaves the process's descriptor table as syscall()
 * does, under every detector: POSIX record locks (a child still sees them), flock() locks, the
 * lowest free number for the next open(), the last free slot of a full table, F_GETFD flags;
 * and it works on the file its descriptor named when it was made. Calls that block (a FIFO
 * with no data yet, pages evicted) and calls that do not. */
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include "movedfd-util.h"

/* Does another process see this one's write lock on the whole of `path` (opened as `probe`,
 * another open file description, kept open: closing it would drop the lock)? */
static bool lock_seen(const char *path, int probe)
{
	pid_t me = getpid();
#if defined(__SANITIZE_THREAD__)
	/* no fork() here (see SKIP_FORK_UNDER_TSAN): an open file description lock conflicts with
	   the process's record locks, and F_OFD_GETLK reports them just as a child would see */
	(void)path;
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	return fcntl(probe, F_OFD_GETLK, &fl) == 0 && fl.l_type == F_WRLCK && fl.l_pid == me;
#else
	(void)probe;
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(path, O_RDWR);
		struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
		_exit(fd >= 0 && fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type == F_WRLCK &&
		      fl.l_pid == me ? 0 : 1);
	}
	int st;
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return false;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
#endif
}

static void set_lock(int fd, short type)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET };
	cr_expect_eq(fcntl(fd, F_SETLK, &fl), 0, "F_SETLK: %s", strerror(errno));
}

/* POSIX record locks on the file and on the FIFO survive every call made on them. */
static void record_locks_body(void *arg)
{
	struct env *env = arg;
	set_lock(env->fd, F_WRLCK);
	set_lock(env->ffd, F_WRLCK);
	for (int c = 0; c < C_COUNT; c++) {
		const char *path = c == C_READ_FIFO ? env->fifo : env->path;
		int probe = env->probe[c == C_READ_FIFO];
		cr_expect(lock_seen(path, probe), "[%s] the lock is there before %s", det_names[env->d],
			  call_names[c]);
		if (!run_call(env, c))
			continue;
		cr_expect(lock_seen(path, probe), "[%s] %s released the process's record lock",
			  det_names[env->d], call_names[c]);
		set_lock(c == C_READ_FIFO ? env->ffd : env->fd, F_WRLCK); /* for the next call */
	}
}

/* A flock() lock held on the file stays held; one taken by a call in the background is the
 * file's too. */
static void flock_body(void *arg)
{
	struct env *env = arg;
	int other = open(env->path, O_RDWR | O_CLOEXEC);
	cr_assert_geq(other, 0);
	cr_expect_eq(flock(env->fd, LOCK_EX), 0);
	for (int c = 0; c < C_COUNT; c++) {
		if (c == C_FLOCK_SH || !run_call(env, c))
			continue;
		errno = 0;
		cr_expect(flock(other, LOCK_SH | LOCK_NB) == -1 && errno == EWOULDBLOCK,
			  "[%s] after %s the flock() lock is gone", det_names[env->d], call_names[c]);
	}
	cr_expect_eq(flock(env->fd, LOCK_UN), 0);
	long r = laio_syscall(SYS_flock, env->fd, LOCK_EX);
	int e = errno;
	r = finish(env, r, e, &e);
	cr_expect_eq(r, 0, "[%s] flock(LOCK_EX): %s", det_names[env->d], strerror(e));
	errno = 0;
	cr_expect(flock(other, LOCK_SH | LOCK_NB) == -1 && errno == EWOULDBLOCK,
		  "[%s] a background flock(LOCK_EX) holds the file", det_names[env->d]);
	flock(env->fd, LOCK_UN);
	close(other);
}

/*
 * The one detector that does not promise the numbers: upcall keeps a perf event descriptor in
 * the process's table for each activation that runs, or just ran, the VP (the events must be
 * there to deliver their signals), and its standby opens /proc/self/task/TID/stat for a moment
 * to tell a blocked runner from a preempted one. Descriptor n (the program did not open it)
 * must be one of those, or closed since.
 */
static bool upcall_own(int n)
{
	char link[64], target[96], stat_prefix[32];
	snprintf(link, sizeof link, "/proc/self/fd/%d", n);
	ssize_t len = readlink(link, target, sizeof target - 1);
	if (len < 0)
		return errno == ENOENT;
	target[len] = 0;
	snprintf(stat_prefix, sizeof stat_prefix, "/proc/%d/task/", getpid());
	bool runner_stat = strncmp(target, stat_prefix, strlen(stat_prefix)) == 0 &&
			   len > 5 && strcmp(target + len - 5, "/stat") == 0;
	return runner_stat || strcmp(target, "anon_inode:[perf_event]") == 0;
}

/* What descriptor n names ("" if it is not open). */
static void fd_target(int n, char *out, size_t size)
{
	char link[64];
	snprintf(link, sizeof link, "/proc/self/fd/%d", n);
	ssize_t len = readlink(link, out, size - 1);
	out[len > 0 ? len : 0] = 0;
}

/* How many descriptors of the process name the file descriptor fd names. */
static int names_of(int fd)
{
	char want[256], got[256];
	fd_target(fd, want, sizeof want);
	DIR *dir = opendir("/proc/self/fd");
	int n = 0;
	struct dirent *de;
	while (dir && (de = readdir(dir))) {
		if (de->d_name[0] == '.' || atoi(de->d_name) == dirfd(dir))
			continue;
		fd_target(atoi(de->d_name), got, sizeof got);
		n += strcmp(got, want) == 0;
	}
	if (dir)
		closedir(dir);
	return n;
}

/* While a call is in the background, and after it, no descriptor of the process names the
 * call's file but the program's own, and the next open() gets the lowest free number. (The
 * suite's harness opens descriptors of its own at times: a number taken meanwhile by
 * something else than the call's file is not the call's doing.) */
static void numbers_body(void *arg)
{
	struct env *env = arg;
	int hole = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int above = open("/dev/null", O_RDONLY | O_CLOEXEC);
	close(hole);
	for (int c = 0; c < C_COUNT; c++) {
		int want = lowest_free_number(), names = names_of(call_fd(env, c));
		char buf[8], what[256] = "", file[256];
		fd_target(call_fd(env, c), file, sizeof file);
		pthread_t writer;
		int e;
		long r = start_call(env, c, buf, &writer, &e);
		int during = open("/dev/null", O_RDONLY | O_CLOEXEC);
		int names_during = names_of(call_fd(env, c));
		bool others = true;
		for (int n = want; n < during; n++) {
			if (n == above)
				continue;
			fd_target(n, what, sizeof what);
			others = others && (env->d == LAIO_DETECT_UPCALL ? upcall_own(n)
						: strcmp(what, file) != 0);
		}
		close(during);
		r = finish(env, r, e, &e);
		if (writer)
			pthread_join(writer, NULL);
		if (c == C_FLOCK_SH)
			flock(env->fd, LOCK_UN);
		cr_expect_eq(r, expected(c), "[%s] %s: %ld", det_names[env->d], call_names[c], r);
		cr_expect_eq(names_during, names, "[%s] during %s, %d descriptors name its file, "
			     "not %d", det_names[env->d], call_names[c], names_during, names);
		cr_expect(others, "[%s] open() during %s: %d, not the lowest free %d (%s)",
			  det_names[env->d], call_names[c], during, want, what);
		cr_expect_eq(names_of(call_fd(env, c)), names, "[%s] after %s", det_names[env->d],
			     call_names[c]);
	}
	close(above);
}

/* finish() without a word to the suite's harness, which may need a descriptor to report. */
static long finish_quiet(struct env *env, long r, int e, int *err)
{
	*err = e;
	if (r != -1 || e != EINPROGRESS)
		return r;
	env->bg++;
	struct laio_completion c;
	struct timespec ts = { 10, 0 };
	if (laio_poll(&c, 1, &ts) != 1) {
		*err = ETIMEDOUT;
		return -1;
	}
	*err = c.laio_errno;
	return c.laio_return_value;
}

struct full_result {
	long r;
	int e, last, oe;
	bool detectors;
	char what[128];
};

/* Every call with a table full but for one number; the results, told once the table has room
 * again (the harness may need a descriptor to report). As in numbers_body, a number taken for a
 * moment by something else than the call's file is not the call's doing: the library opens, once
 * in an activation's life, that activation's /proc/.../syscall file (kept high in the table),
 * which another thread's hand-off may do just as the program opens. */
static int fill_and_call(struct env *env, struct full_result *res, int *freed)
{
	int fill[32], n = 0;
	while (n < 32 && (fill[n] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
		n++;
	int full = n > 1 && n < 32 && errno == EMFILE ? n : -1;
	*freed = fill[--n];
	close(*freed);
	for (int c = 0; c < C_COUNT; c++) {
		struct full_result *x = &res[c];
		char buf[8], file[128];
		pthread_t writer;
		fd_target(call_fd(env, c), file, sizeof file);
		long r = start_call(env, c, buf, &writer, &x->e);
		x->last = open("/dev/null", O_RDONLY | O_CLOEXEC);
		x->oe = errno;
		if (x->last < 0)
			fd_target(*freed, x->what, sizeof x->what);
		x->detectors = x->last < 0 && (env->d == LAIO_DETECT_UPCALL
						       ? upcall_own(*freed)
						       : strcmp(x->what, file) != 0);
		x->r = finish_quiet(env, r, x->e, &x->e);
		if (writer)
			pthread_join(writer, NULL);
		if (c == C_FLOCK_SH)
			flock(env->fd, LOCK_UN);
		if (x->last >= 0)
			close(x->last);
	}
	while (n > 0)
		close(fill[--n]);
	return full;
}

/* A table full but for one number: the call in the background does not take it. */
static void full_table_body(void *arg)
{
	struct env *env = arg;
	struct rlimit old, lim;
	struct full_result res[C_COUNT] = { 0 };
	int freed;
	getrlimit(RLIMIT_NOFILE, &old);
	lim = old;
	lim.rlim_cur = (rlim_t)lowest_free_number() + 24;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &lim), 0);
	int full = fill_and_call(env, res, &freed);
	setrlimit(RLIMIT_NOFILE, &old);
	cr_expect_gt(full, 0, "the table was filled");
	for (int c = 0; c < C_COUNT; c++) {
		struct full_result *x = &res[c];
		cr_expect_eq(x->r, expected(c), "[%s] %s: %ld (%s)", det_names[env->d],
			     call_names[c], x->r, x->r < 0 ? strerror(x->e) : "");
		cr_expect(x->last >= 0 || x->detectors,
			  "[%s] open() with one number free, %s in the background: %s (%d: %s)",
			  det_names[env->d], call_names[c], strerror(x->oe), freed, x->what);
	}
}

/* FD_CLOEXEC as the program set it, whatever it was, after every call. */
static void fd_flags_body(void *arg)
{
	struct env *env = arg;
	for (int flags = 0; flags <= FD_CLOEXEC; flags += FD_CLOEXEC)
		for (int c = 0; c < C_COUNT; c++) {
			int fd = call_fd(env, c);
			fcntl(fd, F_SETFD, flags);
			if (!run_call(env, c))
				continue;
			cr_expect_eq(fcntl(fd, F_GETFD), flags, "[%s] %s changed F_GETFD",
				     det_names[env->d], call_names[c]);
		}
}

/* The call reads the file named when it was made, whatever the caller does to the descriptor
 * after EINPROGRESS (closes it, or dup2()s /dev/zero over it). */
static void named_file_body(void *arg)
{
	struct env *env = arg;
	int cases[] = { C_READ_FIFO, C_PREAD_EVICTED, C_READ_EVICTED };
	for (int how = 0; how < 2; how++)
		for (unsigned k = 0; k < sizeof cases / sizeof *cases; k++) {
			int c = cases[k];
			int *fdp = c == C_READ_FIFO ? &env->ffd : &env->fd;
			const char *path = c == C_READ_FIFO ? env->fifo : env->path;
			char buf[8] = { 0 };
			pthread_t writer = 0;
			int e;
			long r;
			int w = -1;
			if (c == C_READ_FIFO) { /* the writer needs its own descriptor */
				w = open(path, O_WRONLY | O_CLOEXEC);
				pthread_create(&writer, NULL, write_later, (void *)(long)w);
				r = laio_syscall(SYS_read, *fdp, buf, 3);
				e = errno;
			} else {
				r = start_call(env, c, buf, &writer, &e);
			}
			bool bg = r == -1 && e == EINPROGRESS;
			int fd = *fdp;
			if (bg && how == 0) {
				close(fd);
			} else if (bg) {
				int z = open("/dev/zero", O_RDONLY | O_CLOEXEC);
				dup2(z, fd);
				close(z);
			}
			r = finish(env, r, e, &e);
			if (writer)
				pthread_join(writer, NULL);
			if (w >= 0)
				close(w);
			cr_expect(r == 3 && memcmp(buf, c == C_READ_FIFO ? "abc" : "aaa", 3) == 0,
				  "[%s] %s, descriptor %s after EINPROGRESS: %ld (%s) \"%.3s\"",
				  det_names[env->d], call_names[c], how ? "dup2()ed over" : "closed",
				  r, r < 0 ? strerror(e) : "", buf);
			if (bg) { /* the descriptor again names its file */
				if (how == 0)
					*fdp = open(path, O_RDWR | O_CLOEXEC);
				else
					dup2(open(path, O_RDWR | O_CLOEXEC), fd);
				cr_assert_geq(*fdp, 0);
			}
		}
}

PER_DETECTOR(record_locks, record_locks_body)
PER_DETECTOR(flock, flock_body)
PER_DETECTOR(lowest_number, numbers_body)
PER_DETECTOR(full_table, full_table_body)
PER_DETECTOR(fd_flags, fd_flags_body)
PER_DETECTOR(named_file, named_file_body)
