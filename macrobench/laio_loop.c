/* laio_loop.c - LAIO-LAIO: blocking sockets and files, every call (accept, recv, send, open,
 * fstat, pread, close) through laio_syscall(); one loop on laio_poll() resumes the continuation
 * of each handle (the paper's Figures 1 and 2). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "laio.h"
#include "server.h"

void count_request(void);
void count_conn(void);

static int lfd;
static struct conn *free_conns, *ready_head, *ready_tail;

/* One call through LAIO. 1 with *ret (-errno on failure) if it finished, 0 if it went background. */
static int call(struct conn *c, int kind, long *ret, long nr, long a, long b, long d, long e)
{
	int disk = kind >= K_OPEN;
	disk_calls += disk;
	kind_calls[kind]++;
	long r = laio_syscall(nr, a, b, d, e, 0L, 0L);
	if (r == -1 && errno == EINPROGRESS) {
		disk_blocked += disk;
		kind_blocked[kind]++;
		pending_put(laio_gethandle(), c, kind);
		return 0;
	}
	*ret = r < 0 ? -errno : r;
	return 1;
}

static void on_recv(struct conn *c, long r);
static void on_send(struct conn *c, long r);
static void on_open(struct conn *c, long r);
static void on_fstat(struct conn *c, long r);
static void on_read(struct conn *c, long r);

static void conn_free(struct conn *c)
{
	long r;
	if (c->file_fd >= 0)
		call(NULL, K_CLOSE, &r, SYS_close, c->file_fd, 0, 0, 0);
	call(NULL, 0, &r, SYS_close, c->fd, 0, 0, 0);
	c->state = C_CLOSED;
	c->next_free = free_conns;
	free_conns = c;
}

static void new_conn(int fd)
{
	struct conn *c = free_conns;
	if (c) {
		free_conns = c->next_free;
	} else if (!(c = calloc(1, sizeof *c)) || !(c->buf = malloc(CHUNK))) {
		close(fd);
		free(c);
		return;
	}
	char *buf = c->buf;
	memset(c, 0, sizeof *c);
	c->buf = buf;
	c->fd = fd;
	c->file_fd = -1;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	count_conn();
	/* start it from the main loop (a trampoline keeps the stack flat) */
	c->next_ready = NULL;
	if (ready_tail)
		ready_tail->next_ready = c;
	else
		ready_head = c;
	ready_tail = c;
}

static void post_accept(void)
{
	long r;
	while (call(NULL, K_ACCEPT, &r, SYS_accept4, lfd, 0, 0, SOCK_CLOEXEC)) {
		if (r < 0) {
			if (r == -EINTR || r == -ECONNABORTED)
				continue;
			return; /* EMFILE and the like: try again on the next completion */
		}
		new_conn((int)r);
	}
}

static void post_recv(struct conn *c)
{
	long r;
	if (c->req_len > 0) { /* a pipelined request may already be complete */
		on_recv(c, 0);
		return;
	}
	if (call(c, K_RECV, &r, SYS_recvfrom, c->fd, (long)(c->req + c->req_len), REQ_MAX - c->req_len, 0))
		on_recv(c, r);
}

static void do_send(struct conn *c)
{
	int n = 0;
	long r;
	if (c->hdr_off < c->hdr_len)
		c->iov[n++] = (struct iovec){ c->hdr + c->hdr_off, c->hdr_len - c->hdr_off };
	if (c->buf_off < c->buf_len)
		c->iov[n++] = (struct iovec){ c->buf + c->buf_off, c->buf_len - c->buf_off };
	c->msg = (struct msghdr){ .msg_iov = c->iov, .msg_iovlen = (size_t)n };
	c->state = C_SEND;
	if (call(c, K_SEND, &r, SYS_sendmsg, c->fd, (long)&c->msg, MSG_NOSIGNAL, 0))
		on_send(c, r);
}

static void do_read(struct conn *c)
{
	long r;
	c->state = C_DISK;
	if (call(c, K_READ, &r, SYS_pread64, c->file_fd, (long)c->buf, CHUNK, (long)c->file_off))
		on_read(c, r);
}

static void on_recv(struct conn *c, long r)
{
	if (r < 0 || (r == 0 && c->req_len == 0)) {
		conn_free(c);
		return;
	}
	c->req_len += (size_t)r;
	int status = 0;
	switch (http_parse(c, &status)) {
	case P_INCOMPLETE:
		if (r == 0) { /* only leftover bytes: read more */
			if (call(c, K_RECV, &r, SYS_recvfrom, c->fd, (long)(c->req + c->req_len),
				 REQ_MAX - c->req_len, 0))
				on_recv(c, r == 0 ? -1 : r);
		} else {
			post_recv(c);
		}
		return;
	case P_ERROR:
		conn_error(c, status);
		do_send(c);
		return;
	case P_OK:
		c->state = C_DISK;
		if (call(c, K_OPEN, &r, SYS_openat, root_fd, (long)c->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0))
			on_open(c, r);
		return;
	}
}

static void finish_open(struct conn *c, int fd, int err, const struct stat *st)
{
	int close_fd;
	long r;
	if (conn_file_opened(c, fd, err, st, &close_fd)) {
		do_read(c);
		return;
	}
	if (close_fd >= 0)
		call(NULL, K_CLOSE, &r, SYS_close, close_fd, 0, 0, 0);
	do_send(c);
}

static void on_open(struct conn *c, long r)
{
	if (r < 0) {
		finish_open(c, -1, (int)-r, NULL);
		return;
	}
	c->file_fd = (int)r;
	if (call(c, K_FSTAT, &r, SYS_fstat, c->file_fd, (long)&c->st, 0, 0))
		on_fstat(c, r);
}

static void on_fstat(struct conn *c, long r)
{
	int fd = c->file_fd;
	c->file_fd = -1;
	if (r < 0) {
		call(NULL, K_CLOSE, &r, SYS_close, fd, 0, 0, 0);
		finish_open(c, -1, (int)-r, NULL);
		return;
	}
	finish_open(c, fd, 0, &c->st);
}

static void on_read(struct conn *c, long r)
{
	if (r <= 0) {
		conn_free(c);
		return;
	}
	c->buf_len = (size_t)r;
	c->buf_off = 0;
	c->file_off += r;
	do_send(c);
}

static void on_send(struct conn *c, long r)
{
	if (r < 0) {
		conn_free(c);
		return;
	}
	size_t a = (size_t)r, h = c->hdr_len - c->hdr_off;
	if (a >= h) {
		c->hdr_off = c->hdr_len;
		c->buf_off += a - h;
	} else {
		c->hdr_off += a;
	}
	if (c->hdr_off < c->hdr_len || c->buf_off < c->buf_len) {
		do_send(c);
		return;
	}
	if (c->file_fd >= 0 && c->file_off < c->file_size) {
		do_read(c);
		return;
	}
	count_request();
	if (c->file_fd >= 0) {
		call(NULL, K_CLOSE, &r, SYS_close, c->file_fd, 0, 0, 0);
		c->file_fd = -1;
	}
	if (c->close_after) {
		conn_free(c);
		return;
	}
	conn_reset_request(c);
	c->next_ready = NULL; /* the next request: from the main loop, to keep the stack flat */
	if (ready_tail)
		ready_tail->next_ready = c;
	else
		ready_head = c;
	ready_tail = c;
}

int loop_laio(int listen_fd)
{
	lfd = listen_fd;
	struct laio_config cfg = { .max_inflight = 65536 };
	if (getenv("LAIO_MAX_INFLIGHT"))
		cfg.max_inflight = 0;
	laio_init(&cfg);
	post_accept();
	struct laio_completion comp[64];
	while (!stopping) {
		/* Serve the connections that are ready now, then the completions. A connection whose
		   next request is already there is served synchronously and is ready again at once:
		   served until the list empties, a few such connections would keep every background
		   call's completion (and every new connection) waiting. */
		struct conn *batch = ready_head;
		ready_head = ready_tail = NULL;
		while (batch) {
			struct conn *c = batch;
			batch = c->next_ready;
			c->state = C_READ_REQ;
			post_recv(c);
		}
		const struct timespec zero = { 0, 0 }, wait = { 0, 200 * 1000 * 1000 };
		int n = laio_poll(comp, 64, ready_head ? &zero : &wait);
		for (int i = 0; i < n; i++) {
			int kind;
			struct conn *c = pending_take(comp[i].laio_handle, &kind);
			long r = comp[i].laio_return_value < 0 ? -comp[i].laio_errno : comp[i].laio_return_value;
			switch (kind) {
			case K_ACCEPT:
				if (r >= 0)
					new_conn((int)r);
				post_accept();
				break;
			case K_RECV: on_recv(c, r); break;
			case K_SEND: on_send(c, r); break;
			case K_OPEN: on_open(c, r); break;
			case K_FSTAT: on_fstat(c, r); break;
			case K_READ: on_read(c, r); break;
			default: break;
			}
		}
	}
	print_laio_stats("LAIO-LAIO");
	return 0;
}
