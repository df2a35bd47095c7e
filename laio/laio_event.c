/* laio_event.c - the libevent adapter (laio_event.h).
 *
 * Three rules keep a context safe to detach from inside one of its own callbacks:
 *   - completions are taken from laio_poll() one at a time, so a detach leaves every finished
 *     call it has not dispatched with LAIO, where the thread's next laio_poll() reports it;
 *   - a callback runs only while the context is marked busy (`depth`); a detach then only marks
 *     it, and the outermost dispatcher frees it once the callback has returned;
 *   - callbacks for calls drained before their callback was set run from an event the context
 *     owns, so they go with it.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include "laio_event.h"

struct waiter {
	void *handle;
	laio_event_cb *cb;
	void *arg;
	struct waiter *next;
};

/* A completion taken before its callback was set (on `early`), or one whose callback is set and
 * that waits for the loop to call it (on `late`, in the order the callbacks were set). */
struct done {
	struct laio_completion c;
	laio_event_cb *cb;
	void *arg;
	struct done *next;
};

struct laio_event_ctx {
	struct event_base *base;
	struct event *ev;       /* laio_fd() readable */
	struct event *late_ev;  /* runs the `late` callbacks */
	struct waiter *waiters;
	struct done *early;
	struct done *late, **late_tail;
	int depth;              /* callbacks of this context running now (they may nest) */
	bool detached;
};

static struct waiter *take_waiter(struct laio_event_ctx *ctx, void *handle)
{
	for (struct waiter **w = &ctx->waiters; *w; w = &(*w)->next)
		if ((*w)->handle == handle) {
			struct waiter *found = *w;
			*w = found->next;
			return found;
		}
	return NULL;
}

static struct done *take_early(struct laio_event_ctx *ctx, void *handle)
{
	for (struct done **d = &ctx->early; *d; d = &(*d)->next)
		if ((*d)->c.laio_handle == handle) {
			struct done *found = *d;
			*d = found->next;
			return found;
		}
	return NULL;
}

static void free_list(struct done *d)
{
	while (d) {
		struct done *next = d->next;
		free(d);
		d = next;
	}
}

static void destroy(struct laio_event_ctx *ctx)
{
	while (ctx->waiters)
		free(take_waiter(ctx, ctx->waiters->handle));
	free_list(ctx->early);
	free_list(ctx->late);
	free(ctx);
}

/* Around every callback: a detach inside it is carried out once the outermost one is done. */
static void enter(struct laio_event_ctx *ctx)
{
	ctx->depth++;
}

static bool leave(struct laio_event_ctx *ctx)
{
	if (--ctx->depth == 0 && ctx->detached) {
		destroy(ctx);
		return false;
	}
	return true;
}

/* A completion without a callback yet. The handle is free in LAIO now and a later call may be
 * given it: one kept for an earlier call with the same handle is dropped (laio_event_set() would
 * not know which call it is for). */
static void keep_early(struct laio_event_ctx *ctx, const struct laio_completion *c)
{
	struct done *d = take_early(ctx, c->laio_handle);
	if (!d && !(d = malloc(sizeof(*d))))
		abort();
	*d = (struct done){ .c = *c, .next = ctx->early };
	ctx->early = d;
}

static void dispatch(struct laio_event_ctx *ctx, const struct laio_completion *c)
{
	struct waiter *w = take_waiter(ctx, c->laio_handle);
	if (!w) {
		keep_early(ctx, c);
		return;
	}
	laio_event_cb *cb = w->cb;
	void *arg = w->arg;
	free(w);
	cb(c->laio_handle, c->laio_return_value, c->laio_errno, arg);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct laio_event_ctx *ctx = arg;
	struct laio_completion c;
	struct timespec zero = { 0, 0 };
	(void)fd;
	(void)what;
	enter(ctx);
	while (!ctx->detached && laio_poll(&c, 1, &zero) == 1)
		dispatch(ctx, &c);
	leave(ctx);
}

static void on_late(evutil_socket_t fd, short what, void *arg)
{
	struct laio_event_ctx *ctx = arg;
	(void)fd;
	(void)what;
	enter(ctx);
	while (!ctx->detached && ctx->late) {
		struct done *d = ctx->late;
		if (!(ctx->late = d->next))
			ctx->late_tail = &ctx->late;
		d->cb(d->c.laio_handle, d->c.laio_return_value, d->c.laio_errno, d->arg);
		free(d);
	}
	leave(ctx);
}

struct laio_event_ctx *laio_event_attach(struct event_base *base)
{
	int fd = laio_fd();
	if (fd < 0)
		return NULL;
	struct laio_event_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return NULL;
	ctx->base = base;
	ctx->late_tail = &ctx->late;
	ctx->ev = event_new(base, fd, EV_READ | EV_PERSIST, on_readable, ctx);
	ctx->late_ev = evtimer_new(base, on_late, ctx);
	if (!ctx->ev || !ctx->late_ev || event_add(ctx->ev, NULL) < 0) {
		if (ctx->ev)
			event_free(ctx->ev);
		if (ctx->late_ev)
			event_free(ctx->late_ev);
		free(ctx);
		errno = ENOMEM;
		return NULL;
	}
	return ctx;
}

/* The call had finished and was taken already: its callback runs from the loop. */
static int set_late(struct laio_event_ctx *ctx, struct done *d, laio_event_cb *cb, void *arg)
{
	struct timeval now = { 0, 0 };
	d->cb = cb;
	d->arg = arg;
	d->next = NULL;
	*ctx->late_tail = d;
	ctx->late_tail = &d->next;
	return event_add(ctx->late_ev, &now) < 0 ? (errno = ENOMEM, -1) : 0;
}

int laio_event_set(struct laio_event_ctx *ctx, void *handle, laio_event_cb *cb, void *arg)
{
	if (!ctx || ctx->detached || !handle || !cb) {
		errno = EINVAL;
		return -1;
	}
	struct done *d = take_early(ctx, handle);
	/* a call in flight with this handle is a later one than the completion kept for it */
	if (d && laio_in_flight(handle) == 1) {
		free(d);
		d = NULL;
	}
	if (d)
		return set_late(ctx, d, cb, arg);
	struct waiter *w = take_waiter(ctx, handle); /* set again: the last callback counts */
	if (!w && !(w = malloc(sizeof(*w)))) {
		errno = ENOMEM;
		return -1;
	}
	*w = (struct waiter){ handle, cb, arg, ctx->waiters };
	ctx->waiters = w;
	return 0;
}

void laio_event_detach(struct laio_event_ctx *ctx)
{
	if (!ctx || ctx->detached)
		return;
	ctx->detached = true;
	event_free(ctx->ev);
	event_free(ctx->late_ev);
	ctx->ev = ctx->late_ev = NULL;
	if (ctx->depth == 0)
		destroy(ctx);
}
