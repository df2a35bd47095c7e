/* test_activation.c - the scheduler-activations interface (activation/sa.h) on its own, with a
 * minimal upcall handler: what kse(2) promises, checked per detector. */
#include <sys/socket.h>
#include <sys/stat.h>
#include "test-util.h"
#include "sa.h"

/* A minimal user-level scheduler: one flow; a blocked call is abandoned (its result arrives on
 * the completed list) and the flow continues with -EINPROGRESS, as LAIO does. */
struct mini {
	struct sa_mailbox mb;
	struct sa_thr_mailbox tm[64];
	struct sa_thr_mailbox *cur;   /* the flow's current thread mailbox */
	int next_tm;
	char stack[64 * 1024];
	struct sa_context release_ctx;
	int blocked_upcalls, unblocked_upcalls, timedout;
	struct sa_thr_mailbox *done[64];
	int ndone;
};

static __thread struct mini *me;

static void handler(struct sa_mailbox *mb, struct sa_upcall *u)
{
	struct mini *m = (struct mini *)mb;
	if (u->sa_event == SA_BLOCKED) {
		m->blocked_upcalls++;
		m->cur = &m->tm[++m->next_tm];
		sa_thr_init(m->cur);
		sa_switch_to(mb, m->cur, &u->sa_blocked->tm_context, -EINPROGRESS);
	}
	m->unblocked_upcalls++;
	m->timedout = u->sa_timedout;
	for (struct sa_thr_mailbox *t = u->sa_done; t; t = t->tm_link)
		m->done[m->ndone++] = t;
	sa_switch_to(mb, m->cur, &m->release_ctx, 0);
}

static void release_fn(void *arg)
{
	struct timespec *ts = arg;
	sa_release(&me->mb, ts);
}

/* Wait (sa_release) until `n` completions have been collected or `secs` have passed. */
static void collect(int n, double secs)
{
	double end = now_s() + secs;
	while (me->ndone < n && now_s() < end) {
		struct sa_thr_mailbox *t = sa_take_completed(&me->mb);
		for (; t; t = t->tm_link)
			me->done[me->ndone++] = t;
		if (me->ndone >= n)
			break;
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		sa_save_and_run(&me->release_ctx, release_fn, &ts, me->stack + sizeof me->stack);
	}
}

static struct mini *mini_new(int detector)
{
	struct mini *m = calloc(1, sizeof(*m));
	m->mb.sa_func = handler;
	m->mb.sa_stack = m->stack;
	m->mb.sa_stacksize = sizeof m->stack;
	m->mb.sa_notify_fd = -1;
	cr_expect_eq(sa_create(&m->mb), 0);
	sa_thr_init(&m->tm[0]);
	m->cur = m->mb.sa_curthread = &m->tm[0];
	if (sa_set_detector(&m->mb, detector) < 0) {
		cr_expect_eq(errno, ENOTSUP);
		return NULL;
	}
	me = m;
	return m;
}

struct blocking_case {
	const char *name;
	int (*setup)(long a[6]);  /* returns 0, fills the call's arguments */
	long nr;
	void (*unblock)(long a[6]);
	long expect;
};

static int p_fds[2];
static char byte;
static int setup_pipe(long a[6])
{
	make_pipe(p_fds);
	a[0] = p_fds[0]; a[1] = (long)&byte; a[2] = 1;
	return 0;
}
static void unblock_pipe(long a[6]) { (void)a; cr_expect_eq(write(p_fds[1], "k", 1), 1); }

static struct timespec sleep_ts = { 0, 50 * 1000 * 1000 };
static int setup_sleep(long a[6]) { a[0] = (long)&sleep_ts; a[1] = 0; return 0; }
static void unblock_none(long a[6]) { (void)a; }

static int sk[2];
static char sbuf[8];
static int setup_socket(long a[6])
{
	cr_expect_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sk), 0);
	a[0] = sk[0]; a[1] = (long)sbuf; a[2] = sizeof sbuf; a[3] = 0; a[4] = 0; a[5] = 0;
	return 0;
}
static void unblock_socket(long a[6]) { (void)a; cr_expect_eq(write(sk[1], "hello", 5), 5); }

static int ffd = -1;
static int setup_fsync(long a[6])
{
	char path[] = "/tmp/laio-fsync-XXXXXX";
	ffd = mkstemp(path);
	unlink(path);
	static char chunk[1 << 20];
	memset(chunk, 'x', sizeof chunk);
	for (int i = 0; i < 64; i++) /* 64 MiB of dirty pages: fsync must wait for the disk */
		cr_expect_eq(write(ffd, chunk, sizeof chunk), (ssize_t)sizeof chunk);
	a[0] = ffd;
	return 0;
}

static const struct blocking_case cases[] = {
	{ "empty pipe", setup_pipe, SYS_read, unblock_pipe, 1 },
	{ "nanosleep", setup_sleep, SYS_nanosleep, unblock_none, 0 },
	{ "socket", setup_socket, SYS_recvfrom, unblock_socket, 5 },
	{ "fsync of 64 MiB", setup_fsync, SYS_fsync, unblock_none, 0 },
};

struct case_arg {
	int detector;
	const struct blocking_case *c;
};

static void *blocking_thread(void *p)
{
	struct case_arg *ca = p;
	const struct blocking_case *c = ca->c;
	if (!mini_new(ca->detector))
		return NULL;
	const char *how = sa_detector_name(&me->mb, c->nr);
	long a[6] = { 0 };
	c->setup(a);
	long r = sa_syscall(c->nr, a[0], a[1], a[2], a[3], a[4], a[5]);
	int e = errno;
	if (strcmp(how, "none") == 0) {
		cr_expect_eq(r, c->expect, "%s without a detector runs synchronously", c->name);
		return NULL;
	}
	if (r != -1 && c->nr == SYS_fsync) {
		cr_log_warn("fsync finished without blocking here (%s)", det_names[ca->detector]);
		return NULL;
	}
	cr_expect(r == -1 && e == EINPROGRESS, "%s/%s: %ld %s", c->name, how, r, strerror(e));
	cr_expect_eq(me->blocked_upcalls, 1, "%s/%s: one BLOCKED upcall", c->name, how);
	c->unblock(a);
	collect(1, 10);
	cr_expect_eq(me->ndone, 1, "%s/%s: one completion", c->name, how);
	if (me->ndone == 1)
		cr_expect_eq(me->done[0]->tm_retval, c->expect, "%s/%s: result", c->name, how);
	collect(2, 0.2);
	cr_expect_eq(me->ndone, 1, "%s/%s: exactly one", c->name, how);
	return NULL;
}

Test(activation, blocking_call_one_upcall_one_completion)
{
	for (int d = 0; d < SA_DETECT_COUNT; d++)
		for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
			struct case_arg ca = { d, &cases[i] };
			pthread_t t;
			pthread_create(&t, NULL, blocking_thread, &ca);
			pthread_join(t, NULL);
		}
}

static void *release_thread(void *p)
{
	(void)p;
	mini_new(SA_DETECT_AUTO);
	struct timespec ts = { 0, 30 * 1000 * 1000 };
	double t0 = now_s();
	sa_save_and_run(&me->release_ctx, release_fn, &ts, me->stack + sizeof me->stack);
	cr_expect(me->timedout && me->unblocked_upcalls == 1, "release timed out with an upcall");
	cr_expect(now_s() - t0 >= 0.029, "after the timeout");
	struct timespec bad = { 0, -5 };
	cr_expect(sa_release(&me->mb, &bad) == -1 && errno == EINVAL, "bad timespec");
	/* a wakeup before the release makes it return at once */
	sa_wakeup(&me->mb);
	t0 = now_s();
	struct timespec long_ts = { 5, 0 };
	sa_save_and_run(&me->release_ctx, release_fn, &long_ts, me->stack + sizeof me->stack);
	cr_expect(!me->timedout && now_s() - t0 < 1, "woken, not timed out");
	return NULL;
}

Test(activation, release_timeout_and_wakeup)
{
	pthread_t t;
	pthread_create(&t, NULL, release_thread, NULL);
	pthread_join(t, NULL);
}

static void *nospare_thread(void *p)
{
	(void)p;
	if (!mini_new(SA_DETECT_EAGER))
		return NULL;
	struct sa_counters c0, c1;
	sa_counters(&c0);
	/* make creation fail, then occupy every spare with a sleep: the next call that would be
	   moved must run synchronously */
	sa_inject_create_failures(1000000);
	int fails = 0;
	struct timespec ts = { 0, 200 * 1000 * 1000 };
	for (int i = 0; i < 60 && !fails; i++) {
		long r = sa_syscall(SYS_nanosleep, (long)&ts, 0, 0, 0, 0, 0);
		if (r == 0)
			fails = 1;
		else
			cr_expect(r == -1 && errno == EINPROGRESS, "moved: %ld %s", r, strerror(errno));
	}
	sa_inject_create_failures(0);
	sa_counters(&c1);
	cr_expect(fails, "with no spare the call completes synchronously");
	cr_expect(c1.sync_fallback > c0.sync_fallback, "and is counted");
	cr_expect(me->mb.sa_nsync >= 1, "per VP too");
	return NULL;
}

Test(activation, no_spare_means_synchronous)
{
	pthread_t t;
	pthread_create(&t, NULL, nospare_thread, NULL);
	pthread_join(t, NULL);
}

Test(activation, create_checks_arguments)
{
	struct sa_mailbox mb = { 0 };
	errno = 0;
	cr_expect(sa_create(&mb) == -1 && errno == EINVAL, "no upcall function");
	cr_expect(sa_create(NULL) == -1 && errno == EINVAL, "NULL");
	cr_expect_null(sa_self());
}
