/* test_event.c - the libevent adapter: a continuation per LAIO handle, called once. */
#include "test-util.h"
#include "laio_event.h"

struct result {
	int calls;
	long rv;
	int err;
	void *handle;
	struct event_base *base;
	int *left;
};

static void done(void *handle, long rv, int err, void *arg)
{
	struct result *r = arg;
	r->calls++;
	r->rv = rv;
	r->err = err;
	cr_expect_eq(handle, r->handle, "the callback gets its own handle");
	if (--*r->left == 0)
		event_base_loopbreak(r->base);
}

Test(event, continuation_per_handle)
{
	struct event_base *base = event_base_new();
	struct laio_event_ctx *ctx = laio_event_attach(base);
	cr_assert_not_null(ctx);
	int left = 3, p[2];
	struct result r[3] = { 0 };
	/* long enough to be seen blocked however slow the run (valgrind: LAIO_SANITIZED) */
	static struct timespec ts[2];
	ts[0] = (struct timespec){ 0, 30 * 1000 * 1000 * slow_factor() };
	ts[1] = (struct timespec){ 0, 10 * 1000 * 1000 * slow_factor() };
	char c;
	make_pipe(p);
	for (int i = 0; i < 2; i++) {
		cr_assert(laio_syscall(SYS_nanosleep, &ts[i], NULL) == -1 && errno == EINPROGRESS);
		r[i] = (struct result){ .handle = laio_gethandle(), .base = base, .left = &left };
		cr_assert_eq(laio_event_set(ctx, r[i].handle, done, &r[i]), 0);
	}
	cr_assert(laio_syscall(SYS_read, p[0], &c, 1) == -1 && errno == EINPROGRESS);
	r[2] = (struct result){ .handle = laio_gethandle(), .base = base, .left = &left };
	cr_assert_eq(laio_event_set(ctx, r[2].handle, done, &r[2]), 0);
	cr_assert_eq(write(p[1], "e", 1), 1);
	struct timeval limit = { 10, 0 };
	event_base_loopexit(base, &limit);
	event_base_dispatch(base);
	for (int i = 0; i < 3; i++)
		cr_expect_eq(r[i].calls, 1, "callback %d called once", i);
	cr_expect(r[0].rv == 0 && r[1].rv == 0 && r[2].rv == 1 && c == 'e', "results");
	errno = 0;
	cr_expect(laio_event_set(ctx, NULL, done, NULL) == -1 && errno == EINVAL, "NULL handle");
	laio_event_detach(ctx);
	event_base_free(base);
}

/* ---- detach inside a callback, late callbacks, handle reuse ---- */

struct detaching {
	struct laio_event_ctx *ctx;
	int calls;
};

static void detach_in_callback(void *handle, long rv, int err, void *arg)
{
	struct detaching *d = arg;
	(void)handle;
	(void)rv;
	(void)err;
	if (d->calls++ == 0)
		laio_event_detach(d->ctx);
}

static void eager_thread(void)
{
	struct laio_config c = { .detector = LAIO_DETECT_EAGER };
	cr_assert_eq(laio_init(&c), 0, "laio_init(eager): %s", strerror(errno));
}

/* Regression: the adapter drained 32 completions at a time and went on dispatching on the
 * context freed by the first callback's detach (valgrind: invalid reads); the other finished
 * calls were lost. Now the first callback runs, and laio_poll() reports the other nine. */
Test(event, detach_inside_a_callback)
{
	eager_thread();
	struct event_base *base = event_base_new();
	struct detaching d = { laio_event_attach(base), 0 };
	cr_assert_not_null(d.ctx);
	for (int i = 0; i < 10; i++) {
		cr_assert(laio_syscall(SYS_getpid) == -1 && errno == EINPROGRESS);
		cr_assert_eq(laio_event_set(d.ctx, laio_gethandle(), detach_in_callback, &d), 0);
	}
	usleep(50 * 1000); /* the ten finish before the loop looks (if not, they wait in LAIO) */
	event_base_loop(base, EVLOOP_NONBLOCK);
	cr_expect_eq(d.calls, 1, "only the callback that detached ran");
	struct laio_completion c[16];
	int got = poll_n(c, 9, 10);
	cr_expect_eq(got, 9, "the nine calls not dispatched are reported by laio_poll()");
	event_base_free(base);
}

static int late_runs;

static void count_late(void *handle, long rv, int err, void *arg)
{
	(void)handle;
	(void)rv;
	(void)err;
	(void)arg;
	late_runs++;
}

/* A call drained before its callback was set: the callback waits for the loop, and a detach
 * before that drops it (it used to run from the base after the detach). */
Test(event, late_callback_dropped_by_detach)
{
	eager_thread();
	struct event_base *base = event_base_new();
	struct laio_event_ctx *ctx = laio_event_attach(base);
	cr_assert_not_null(ctx);
	cr_assert(laio_syscall(SYS_getpid) == -1 && errno == EINPROGRESS);
	void *h = laio_gethandle();
	double end = now_s() + 10;
	while (laio_in_flight(h) == 1 && now_s() < end)
		event_base_loop(base, EVLOOP_NONBLOCK), usleep(1000);
	cr_assert_eq(laio_in_flight(h), 0, "the loop took the completion");
	late_runs = 0;
	cr_assert_eq(laio_event_set(ctx, h, count_late, NULL), 0);
	cr_expect_eq(late_runs, 0, "never from inside laio_event_set()");
	laio_event_detach(ctx);
	event_base_loop(base, EVLOOP_NONBLOCK);
	cr_expect_eq(late_runs, 0, "dropped with the context");
	/* and without the detach it runs, once */
	ctx = laio_event_attach(base);
	cr_assert(laio_syscall(SYS_getpid) == -1 && errno == EINPROGRESS);
	h = laio_gethandle();
	while (laio_in_flight(h) == 1 && now_s() < end)
		event_base_loop(base, EVLOOP_NONBLOCK), usleep(1000);
	cr_assert_eq(laio_event_set(ctx, h, count_late, NULL), 0);
	event_base_loop(base, EVLOOP_NONBLOCK);
	cr_expect_eq(late_runs, 1, "a late callback runs from the loop");
	laio_event_detach(ctx);
	event_base_free(base);
}

struct reuse {
	int calls;
	long rv;
};

static void record(void *handle, long rv, int err, void *arg)
{
	struct reuse *r = arg;
	(void)handle;
	(void)err;
	r->calls++;
	r->rv = rv;
}

/* Regression: a call that never got a callback left its completion on the adapter's list, and
 * the later call that LAIO gave the same handle received that old result at once. */
Test(event, reused_handle_gets_its_own_result)
{
	eager_thread();
	struct event_base *base = event_base_new();
	struct laio_event_ctx *ctx = laio_event_attach(base);
	cr_assert_not_null(ctx);
	int p[2];
	make_pipe(p);
	cr_assert(laio_syscall(SYS_write, p[1], "abc", 3) == -1 && errno == EINPROGRESS);
	void *old = laio_gethandle();
	double end = now_s() + 10;
	while (laio_in_flight(old) == 1 && now_s() < end)
		event_base_loop(base, EVLOOP_NONBLOCK), usleep(1000);
	cr_assert_eq(laio_in_flight(old), 0, "the loop took the write's completion");
	/* calls with callbacks until LAIO gives the write's handle to another call */
	void *h = NULL;
	struct reuse r = { 0, 0 };
	for (int round = 0; round < 4096 && h != old; round++) {
		cr_assert(laio_syscall(SYS_getpid) == -1 && errno == EINPROGRESS);
		h = laio_gethandle();
		r.calls = 0;
		cr_assert_eq(laio_event_set(ctx, h, record, &r), 0);
		while (!r.calls && now_s() < end + 20)
			event_base_loop(base, EVLOOP_ONCE);
		cr_assert_eq(r.calls, 1);
		cr_assert_eq(r.rv, getpid(), "round %d: the callback got another call's result "
			     "(%ld)", round, r.rv);
	}
	cr_expect_eq(h, old, "the handle came round again");
	laio_event_detach(ctx);
	event_base_free(base);
	close(p[0]);
	close(p[1]);
}
