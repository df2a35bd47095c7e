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
	static struct timespec ts[2] = { { 0, 30 * 1000 * 1000 }, { 0, 10 * 1000 * 1000 } };
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
