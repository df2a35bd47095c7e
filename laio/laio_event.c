/* laio_event.c - the libevent adapter (laio_event.h). */
#include <errno.h>
#include <stdlib.h>
#include "laio_event.h"

struct waiter {
	void *handle;
	laio_event_cb *cb;
	void *arg;
	struct waiter *next;
};

struct done {                         /* a completion that arrived before its laio_event_set() */
	struct laio_completion c;
	struct done *next;
};

struct laio_event_ctx {
	struct event_base *base;
	struct event *ev;
	struct waiter *waiters;
	struct done *early;
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

static void dispatch(struct laio_event_ctx *ctx, const struct laio_completion *c)
{
	struct waiter *w = take_waiter(ctx, c->laio_handle);
	if (!w) {
		struct done *d = malloc(sizeof(*d));
		if (!d)
			abort();
		d->c = *c;
		d->next = ctx->early;
		ctx->early = d;
		return;
	}
	w->cb(c->laio_handle, c->laio_return_value, c->laio_errno, w->arg);
	free(w);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct laio_event_ctx *ctx = arg;
	struct laio_completion c[32];
	struct timespec zero = { 0, 0 };
	int n;
	(void)fd;
	(void)what;
	while ((n = laio_poll(c, 32, &zero)) > 0)
		for (int i = 0; i < n; i++)
			dispatch(ctx, &c[i]);
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
	ctx->ev = event_new(base, fd, EV_READ | EV_PERSIST, on_readable, ctx);
	if (!ctx->ev || event_add(ctx->ev, NULL) < 0) {
		if (ctx->ev)
			event_free(ctx->ev);
		free(ctx);
		errno = ENOMEM;
		return NULL;
	}
	return ctx;
}

/* A completion that was reported before its callback was set: deliver it from the loop. */
struct late {
	laio_event_cb *cb;
	void *arg;
	struct laio_completion c;
};

static void deliver_late(evutil_socket_t fd, short what, void *p)
{
	struct late *l = p;
	(void)fd;
	(void)what;
	l->cb(l->c.laio_handle, l->c.laio_return_value, l->c.laio_errno, l->arg);
	free(l);
}

int laio_event_set(struct laio_event_ctx *ctx, void *handle, laio_event_cb *cb, void *arg)
{
	if (!ctx || !handle || !cb) {
		errno = EINVAL;
		return -1;
	}
	for (struct done **d = &ctx->early; *d; d = &(*d)->next)
		if ((*d)->c.laio_handle == handle) {
			struct done *found = *d;
			struct late *l = malloc(sizeof(*l));
			if (!l) {
				errno = ENOMEM;
				return -1;
			}
			*d = found->next;
			*l = (struct late){ cb, arg, found->c };
			free(found);
			struct timeval now = { 0, 0 };
			return event_base_once(ctx->base, -1, EV_TIMEOUT, deliver_late, l, &now);
		}
	struct waiter *w = malloc(sizeof(*w));
	if (!w) {
		errno = ENOMEM;
		return -1;
	}
	*w = (struct waiter){ handle, cb, arg, ctx->waiters };
	ctx->waiters = w;
	return 0;
}

void laio_event_detach(struct laio_event_ctx *ctx)
{
	if (!ctx)
		return;
	event_free(ctx->ev);
	while (ctx->waiters) {
		struct waiter *w = ctx->waiters;
		ctx->waiters = w->next;
		free(w);
	}
	while (ctx->early) {
		struct done *d = ctx->early;
		ctx->early = d->next;
		free(d);
	}
	free(ctx);
}
