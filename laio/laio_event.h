/*
 * laio_event.h - LAIO in a libevent loop (libevent is what the paper's servers used).
 *
 * The paper's handler "initializes an event object and associates the continuation with the LAIO
 * handle"; its event loop calls the continuation when the background call completes. Here the
 * event object is laio_event_set(): the calling thread's laio_fd() is watched by the base, and
 * when it is readable the adapter drains laio_poll() and calls each handle's callback once.
 * Installed as <laio/event.h>; link with `pkg-config --libs laio-event` (library liblaio-event).
 */
#ifndef LAIO_EVENT_H
#define LAIO_EVENT_H

#include <event2/event.h>
#include "laio.h"

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default) /* the library is built with -fvisibility=hidden */

typedef void laio_event_cb(void *handle, long return_value, int err, void *arg);

struct laio_event_ctx;

/* Watch the calling thread's LAIO completions from `base` (which must be run by this thread).
 * NULL and errno on failure. */
struct laio_event_ctx *laio_event_attach(struct event_base *base);

/* Call cb(handle, return value, errno, arg) once, from the loop, when `handle` (from
 * laio_gethandle()) completes. 0, or -1 with EINVAL (NULL handle or callback), ENOMEM. */
int laio_event_set(struct laio_event_ctx *ctx, void *handle, laio_event_cb *cb, void *arg);

/* Stop watching and free ctx, also from inside one of its callbacks (then once that callback has
 * returned). Callbacks not yet called are dropped; their calls stay with LAIO for a later
 * laio_poll() of this thread, except calls the loop had already taken (laio_event(3), NOTES). */
void laio_event_detach(struct laio_event_ctx *ctx);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
