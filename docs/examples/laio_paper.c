/*
 * laio_paper.c - the paper's Figure 1 (event loop using LAIO) and Figure 2 (event handler using
 * LAIO), runnable. A "client" is a pipe whose reading end a slow consumer drains; the server's
 * handler client_write() writes a response with laio_syscall(). When the pipe is full the write
 * blocks: the handler gets EINPROGRESS, ties the continuation client_write_complete() to the LAIO
 * handle through an event object, and returns to the event loop, which calls the continuation
 * when laio_poll() reports the handle.
 *
 * Run with LAIO_TRACE=1 to watch the upcalls and handle transitions.
 *
 * Not with LAIO_DETECTOR=probe: that detector runs writes synchronously (a non-blocking write
 * may be short where the blocking one is not), and a write that waits for room in the pipe then
 * waits for this very thread to drain it: the program hangs, as it would with syscall().
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "laio.h"

struct client {
	int fd;            /* where responses go */
	int drain_fd;      /* the client's side, drained by the loop (a stand-in for the network) */
	char response[3000];
	int responses_left;
	int completed;
};

/* "An event object associated with the LAIO handle" */
struct event {
	void *handle;
	void (*continuation)(struct client *, long ret_val, int err_val);
	struct client *clientp;
};

#define MAX_EVENTS 16
static struct event events[MAX_EVENTS];

static void event_set(void *handle, void (*fn)(struct client *, long, int), struct client *c)
{
	for (int i = 0; i < MAX_EVENTS; i++)
		if (!events[i].handle) {
			events[i] = (struct event){ handle, fn, c };
			return;
		}
	abort();
}

static struct event *event_lookup(void *handle)
{
	for (int i = 0; i < MAX_EVENTS; i++)
		if (events[i].handle == handle)
			return &events[i];
	return NULL;
}

static void client_write(struct client *clientp);

static void client_write_complete(struct client *clientp, long ret_val, int err_val)
{
	if (ret_val < 0) {
		fprintf(stderr, "write failed: %s\n", strerror(err_val));
		exit(1);
	}
	clientp->completed++;
	printf("response %d sent: %ld bytes\n", clientp->completed, ret_val);
	if (--clientp->responses_left > 0)
		client_write(clientp);
}

/* Figure 2: the event handler. */
static void client_write(struct client *clientp)
{
	long ret = laio_syscall(SYS_write, clientp->fd, clientp->response, sizeof clientp->response);
	if (ret == -1 && errno == EINPROGRESS) {
		/* the more interesting case: the write went to the background */
		printf("write blocked: continuing in the background\n");
		event_set(laio_gethandle(), client_write_complete, clientp);
		return;
	}
	client_write_complete(clientp, ret, ret == -1 ? errno : 0);
}

int main(void)
{
	int p[2];
	struct client c = { .responses_left = 8 };
	if (pipe(p) < 0)
		return 1;
	c.fd = p[1];
	c.drain_fd = p[0];
	fcntl(p[1], F_SETPIPE_SZ, 4096); /* a slow client: room for one response at a time */
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	memset(c.response, 'r', sizeof c.response);

	client_write(&c);
	/* Figure 1: the event loop. */
	while (c.completed < 8) {
		struct laio_completion completions[MAX_EVENTS];
		struct timespec timeout = { 0, 5 * 1000 * 1000 };
		int n = laio_poll(completions, MAX_EVENTS, &timeout);
		if (n < 0) {
			perror("laio_poll");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			struct event *ev = event_lookup(completions[i].laio_handle);
			if (!ev) {
				fprintf(stderr, "completion for an unknown handle\n");
				return 1;
			}
			struct event e = *ev;
			ev->handle = NULL; /* the handle may be reused from now on */
			e.continuation(e.clientp, completions[i].laio_return_value,
				       completions[i].laio_errno);
		}
		/* the other events of the loop: here, the client reads what has arrived */
		char buf[8192];
		while (read(c.drain_fd, buf, sizeof buf) > 0)
			;
	}
	struct laio_stats st;
	laio_stats(&st);
	printf("%lu calls, %lu blocked, %lu upcalls\n", st.calls, st.blocked, st.upcalls);
	return st.completed == st.blocked ? 0 : 1;
}
