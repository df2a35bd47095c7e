/* test_movedcalls.c - calls in the background whose files are held outside the process's
 * descriptor table, and the calls that cannot be: the completion notice still reaches the
 * program's eventfd; accept4, recvmsg and sendmsg with SCM_RIGHTS work on the process's table;
 * auto moves no call whose files cannot be held; a child of fork() holds files too. Every
 * detector. */
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include "movedfd-util.h"

/* The completion of a call that ran with its files held elsewhere still makes laio_fd()
 * readable (the notice is written to the program's eventfd, by its number). */
static void notify_body(void *arg)
{
	struct env *env = arg;
	int nfd = laio_fd();
	cr_assert_geq(nfd, 0);
	for (int c = C_READ_FIFO; c <= C_READ_PIPE; c++) {
		char buf[8];
		pthread_t writer;
		int e;
		long r = start_call(env, c, buf, &writer, &e);
		if (r == -1 && e == EINPROGRESS) {
			env->bg++;
			struct pollfd pf = { nfd, POLLIN, 0 };
			cr_expect_eq(poll(&pf, 1, 10000), 1, "[%s] %s: laio_fd() readable",
				     det_names[env->d], call_names[c]);
			struct laio_completion done;
			cr_expect_eq(laio_poll(&done, 1, NULL), 1);
			r = done.laio_return_value;
		}
		pthread_join(writer, NULL);
		cr_expect_eq(r, 3, "[%s] %s: %ld", det_names[env->d], call_names[c], r);
	}
}

/* A message of one byte and one descriptor (SCM_RIGHTS); it must outlive a call in the
 * background that sends or receives it. */
struct rights {
	char byte;
	struct iovec iov;
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct msghdr msg;
};

static struct msghdr *rights_init(struct rights *m, int fd)
{
	memset(m, 0, sizeof *m);
	m->byte = 'x';
	m->iov = (struct iovec){ &m->byte, 1 };
	m->msg = (struct msghdr){ .msg_iov = &m->iov, .msg_iovlen = 1, .msg_control = m->u.buf,
				  .msg_controllen = sizeof m->u.buf };
	struct cmsghdr *c = CMSG_FIRSTHDR(&m->msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return &m->msg;
}

/* The descriptor a received message carried, or -1. */
static int rights_fd(struct rights *m)
{
	struct cmsghdr *c = CMSG_FIRSTHDR(&m->msg);
	int fd = -1;
	if (c && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int)))
		memcpy(&fd, CMSG_DATA(c), sizeof(int));
	return fd;
}

struct later { int s; int fd; };

static void *send_rights_later(void *arg)
{
	struct later *l = arg;
	struct rights m;
	usleep(30000);
	return (void *)sendmsg(l->s, rights_init(&m, l->fd), 0);
}

/* Connect to the socket at path `arg` and say "hi": the client's descriptor, or -1. */
static void *connect_later(void *arg)
{
	usleep(30000);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof a.sun_path, "%s", (const char *)arg);
	int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (connect(c, (struct sockaddr *)&a, sizeof a) != 0 || write(c, "hi", 2) != 2)
		return (void *)-1L;
	return (void *)(long)c;
}

static bool same_file(int a, int b)
{
	struct stat x, y;
	return fstat(a, &x) == 0 && fstat(b, &y) == 0 && x.st_dev == y.st_dev &&
	       x.st_ino == y.st_ino;
}

/* Calls whose result or effect is a descriptor of the process's table, or that name
 * descriptors of it in their memory, run with that table: accept4 returns a descriptor the
 * program can use, recvmsg receives SCM_RIGHTS into it, sendmsg sends the file its number
 * names there. */
static void descriptor_calls_body(void *arg)
{
	struct env *env = arg;
	int sv[2], e;
	cr_assert_eq(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
	/* recvmsg, blocking until a file arrives */
	struct later l = { sv[1], env->fd };
	struct rights m;
	pthread_t t;
	pthread_create(&t, NULL, send_rights_later, &l);
	long r = laio_syscall(SYS_recvmsg, sv[0], rights_init(&m, -1), MSG_CMSG_CLOEXEC);
	r = finish(env, r, errno, &e);
	pthread_join(t, NULL);
	int got = r == 1 ? rights_fd(&m) : -1;
	cr_expect(r == 1 && got >= 0 && same_file(got, env->fd),
		  "[%s] recvmsg(SCM_RIGHTS): %ld (%s), descriptor %d", det_names[env->d], r,
		  r < 0 ? strerror(e) : "", got);
	if (got >= 0)
		close(got);
	/* sendmsg of the FIFO's descriptor */
	r = laio_syscall(SYS_sendmsg, sv[1], rights_init(&m, env->ffd), 0);
	r = finish(env, r, errno, &e);
	got = recvmsg(sv[0], rights_init(&m, -1), MSG_CMSG_CLOEXEC) == 1 ? rights_fd(&m) : -1;
	cr_expect(r == 1 && got >= 0 && same_file(got, env->ffd),
		  "[%s] sendmsg(SCM_RIGHTS): %ld (%s), received %d", det_names[env->d], r,
		  r < 0 ? strerror(e) : "", got);
	if (got >= 0)
		close(got);
	close(sv[0]);
	close(sv[1]);
	/* accept4, blocking until a client connects */
	char path[80];
	snprintf(path, sizeof path, "%s.sock", env->path);
	int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
	cr_assert_eq(bind(ls, (struct sockaddr *)&a, sizeof a), 0, "bind: %s", strerror(errno));
	cr_assert_eq(listen(ls, 1), 0);
	pthread_create(&t, NULL, connect_later, path);
	r = laio_syscall(SYS_accept4, ls, NULL, NULL, SOCK_CLOEXEC);
	r = finish(env, r, errno, &e);
	void *client;
	pthread_join(t, &client);
	char hi[2] = { 0 };
	cr_expect(r >= 0 && read((int)r, hi, 2) == 2 && memcmp(hi, "hi", 2) == 0,
		  "[%s] accept4: %ld (%s), then read \"%.2s\"", det_names[env->d], r,
		  r < 0 ? strerror(e) : "", hi);
	if (r >= 0)
		close((int)r);
	if ((long)client >= 0)
		close((int)(long)client);
	close(ls);
	unlink(path);
}

/* auto never hands off a call whose files a mover cannot hold (where the idle detector works
 * it traps every call; elsewhere it probes reads and receives, but not recvmsg). */
static void auto_routes_body(void *arg)
{
	(void)arg;
	long unheld[] = { SYS_accept, SYS_accept4, SYS_recvmsg, SYS_recvmmsg, SYS_sendmsg,
			  SYS_sendmmsg, SYS_fcntl, SYS_close, SYS_dup2, SYS_epoll_ctl, SYS_ioctl };
	for (unsigned i = 0; i < sizeof unheld / sizeof *unheld; i++) {
		const char *how = laio_detector_name(unheld[i]);
		cr_expect(strcmp(how, "probe") != 0 && strcmp(how, "eager") != 0,
			  "auto: call %ld is moved (%s)", unheld[i], how);
	}
}

Test(movedfd, auto_moves_no_call_it_cannot_hold)
{
	cr_assert_eq(with_detector(LAIO_DETECT_AUTO, auto_routes_body, NULL), 0);
}

/* Descriptors a mover cannot take are the kernel's to judge, as syscall() would: fstat of an
 * O_PATH descriptor succeeds, a closed one or -1 is EBADF, and only the low 32 bits of a
 * descriptor argument count. */
static void odd_descriptors_body(void *arg)
{
	struct env *env = arg;
	int e;
	static struct stat st, want;
	cr_assert_eq(fstat(env->fd, &want), 0);
	int opath = open(env->path, O_PATH | O_CLOEXEC);
	long r = laio_syscall(SYS_fstat, opath, &st);
	r = finish(env, r, errno, &e);
	cr_expect(r == 0 && st.st_ino == want.st_ino, "[%s] fstat(O_PATH): %ld (%s)",
		  det_names[env->d], r, r < 0 ? strerror(e) : "");
	close(opath);
	int closed = lowest_free_number();
	char buf[4];
	long bad[] = { closed, -1, 0x7fffffffL };
	for (unsigned i = 0; i < sizeof bad / sizeof *bad; i++) {
		r = laio_syscall(SYS_read, bad[i], buf, sizeof buf);
		r = finish(env, r, errno, &e);
		cr_expect(r == -1 && e == EBADF, "[%s] read(%ld): %ld (%s)", det_names[env->d],
			  bad[i], r, strerror(e));
	}
	memset(&st, 0, sizeof st);
	r = laio_syscall(SYS_fstat, (1L << 32) | env->fd, &st);
	r = finish(env, r, errno, &e);
	cr_expect(r == 0 && st.st_ino == want.st_ino, "[%s] fstat(2^32 + fd): %ld (%s)",
		  det_names[env->d], r, r < 0 ? strerror(e) : "");
}

/* In a child of fork(), which has none of the parent's movers, calls are held again: a read
 * of a pipe that blocks, and a record lock that survives a pread64. */
static int child_calls(struct env *env)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	if (fcntl(env->fd, F_SETLK, &fl) != 0)
		return 1;
	for (int c = C_READ_PIPE; c <= C_PREAD_EVICTED; c++) {
		char buf[8];
		pthread_t writer;
		int e;
		long r = start_call(env, c, buf, &writer, &e);
		if (r == -1 && e == EINPROGRESS) {
			struct laio_completion done;
			struct timespec ts = { 10, 0 };
			r = laio_poll(&done, 1, &ts) == 1 ? done.laio_return_value : -1;
		}
		if (writer)
			pthread_join(writer, NULL);
		if (r != 3)
			return 2 + c;
	}
	/* the lock is still this process's: an open file description of another owner sees it */
	struct flock q = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	if (fcntl(env->probe[0], F_OFD_GETLK, &q) != 0 || q.l_type != F_WRLCK)
		return 20;
	return 0;
}

static void fork_body(void *arg)
{
	struct env *env = arg;
	cr_expect(run_call(env, C_READ_PIPE), "[%s] before fork()", det_names[env->d]);
	pid_t pid = fork();
	if (pid == 0)
		_exit(child_calls(env));
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "[%s] in the child: status %d",
		  det_names[env->d], WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st));
}

static void fork_under(int d)
{
	SKIP_FORK_UNDER_TSAN();
	run_under(d, fork_body);
}

Test(movedfd, fork_auto) { fork_under(LAIO_DETECT_AUTO); }
Test(movedfd, fork_idle) { fork_under(LAIO_DETECT_IDLE); }
Test(movedfd, fork_upcall) { fork_under(LAIO_DETECT_UPCALL); }
Test(movedfd, fork_probe) { fork_under(LAIO_DETECT_PROBE); }
Test(movedfd, fork_watchdog) { fork_under(LAIO_DETECT_WATCHDOG); }
Test(movedfd, fork_eager) { fork_under(LAIO_DETECT_EAGER); }

PER_DETECTOR(notify, notify_body)
PER_DETECTOR(odd_descriptors, odd_descriptors_body)
PER_DETECTOR(descriptor_calls, descriptor_calls_body)
