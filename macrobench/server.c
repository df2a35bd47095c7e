/* server.c - main() and the epoll event loop shared by NB-B, NB-LAIO, NB-AMTED and io_uring.
 * Sockets are non-blocking; the disk is reached through a struct disk_ops. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "server.h"

int root_fd = -1;
volatile int stopping;
static int epfd = -1;
static const struct disk_ops *ops;
static struct conn *free_conns;
static unsigned long nconns, nrequests;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static struct conn *conn_new(int fd)
{
	struct conn *c = free_conns;
	if (c) {
		free_conns = c->next_free;
	} else {
		c = calloc(1, sizeof *c);
		if (!c)
			return NULL;
		c->buf = malloc(CHUNK);
		if (!c->buf) {
			free(c);
			return NULL;
		}
	}
	char *buf = c->buf;
	memset(c, 0, sizeof *c);
	c->buf = buf;
	c->fd = fd;
	c->file_fd = -1;
	c->ev = -1;
	c->state = C_READ_REQ;
	nconns++;
	return c;
}

static void set_interest(struct conn *c, int ev)
{
	if (c->ev == ev)
		return;
	if (ev == 0) {
		epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
		c->ev = -1;
		return;
	}
	struct epoll_event e = { .events = (unsigned)ev, .data.ptr = c };
	epoll_ctl(epfd, c->ev < 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c->fd, &e);
	c->ev = ev;
}

static void conn_close(struct conn *c)
{
	if (c->file_fd >= 0)
		close(c->file_fd);
	close(c->fd); /* also leaves the epoll set */
	c->state = C_CLOSED;
	c->next_free = free_conns;
	free_conns = c;
}

static void handle_input(struct conn *c);

static void start_disk(struct conn *c, int open)
{
	c->state = C_DISK;
	if (open)
		ops->open(c);
	else
		ops->read(c);
	/* if the call went to the background, stop listening on the socket until it is done */
	if (c->state == C_DISK)
		set_interest(c, 0);
}

/* Send the header and the current chunk; go on to the next chunk or the next request. */
static void try_send(struct conn *c)
{
	c->state = C_SEND;
	for (;;) {
		struct iovec iov[2];
		int n = 0;
		if (c->hdr_off < c->hdr_len)
			iov[n++] = (struct iovec){ c->hdr + c->hdr_off, c->hdr_len - c->hdr_off };
		if (c->buf_off < c->buf_len)
			iov[n++] = (struct iovec){ c->buf + c->buf_off, c->buf_len - c->buf_off };
		if (n == 0)
			break;
		struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)n };
		ssize_t w = sendmsg(c->fd, &m, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				set_interest(c, EPOLLOUT);
				return;
			}
			if (errno == EINTR)
				continue;
			conn_close(c);
			return;
		}
		size_t a = (size_t)w, h = c->hdr_len - c->hdr_off;
		if (a >= h) {
			c->hdr_off = c->hdr_len;
			c->buf_off += a - h;
		} else {
			c->hdr_off += a;
		}
	}
	if (c->file_fd >= 0 && c->file_off < c->file_size) {
		start_disk(c, 0);
		return;
	}
	/* the response is complete */
	nrequests++;
	if (c->file_fd >= 0) {
		close(c->file_fd);
		c->file_fd = -1;
	}
	if (c->close_after) {
		conn_close(c);
		return;
	}
	conn_reset_request(c);
	set_interest(c, EPOLLIN);
	if (c->req_len > 0)
		handle_input(c); /* a pipelined request is already here */
}

void conn_open_done(struct conn *c, int fd, int err, const struct stat *st)
{
	int close_fd;
	if (conn_file_opened(c, fd, err, st, &close_fd)) {
		start_disk(c, 0);
		return;
	}
	if (close_fd >= 0)
		close(close_fd);
	try_send(c);
}

void conn_read_done(struct conn *c, long n, int err)
{
	(void)err;
	if (n <= 0) { /* the file shrank or failed under us: the response cannot be completed */
		conn_close(c);
		return;
	}
	c->buf_len = (size_t)n;
	c->buf_off = 0;
	c->file_off += n;
	try_send(c);
}

/* Parse what has arrived; start the disk work or an error response. */
static void handle_input(struct conn *c)
{
	int status = 0;
	switch (http_parse(c, &status)) {
	case P_INCOMPLETE:
		return;
	case P_ERROR:
		conn_error(c, status);
		try_send(c);
		return;
	case P_OK:
		start_disk(c, 1);
		return;
	}
}

static void on_readable(struct conn *c)
{
	ssize_t n = recv(c->fd, c->req + c->req_len, REQ_MAX - c->req_len, 0);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		conn_close(c);
		return;
	}
	if (n < 0)
		return;
	c->req_len += (size_t)n;
	handle_input(c);
}

static char listen_tag, disk_tag;

int loop_epoll(int lfd, const struct disk_ops *o)
{
	ops = o;
	epfd = epoll_create1(EPOLL_CLOEXEC);
	int dfd = ops->init();
	struct epoll_event e = { .events = EPOLLIN, .data.ptr = &listen_tag };
	epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &e);
	if (dfd >= 0) {
		e.data.ptr = &disk_tag;
		epoll_ctl(epfd, EPOLL_CTL_ADD, dfd, &e);
	}
	struct epoll_event evs[256];
	while (!stopping) {
		int n = epoll_wait(epfd, evs, 256, 500);
		for (int i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;
			if (p == &listen_tag) {
				for (;;) {
					int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
					if (fd < 0)
						break;
					int one = 1;
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
					struct conn *c = conn_new(fd);
					if (!c) {
						close(fd);
						continue;
					}
					set_interest(c, EPOLLIN);
				}
			} else if (p == &disk_tag) {
				ops->event();
			} else {
				struct conn *c = p;
				if (c->state == C_READ_REQ)
					on_readable(c);
				else if (c->state == C_SEND)
					try_send(c);
			}
		}
	}
	ops->report();
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: server --root DIR [--port N] [--arch NB-B|LAIO-LAIO|NB-LAIO|NB-AMTED|io_uring]"
			" [--threads N]\n");
	exit(2);
}

int amted_threads = 8;

int main(int argc, char **argv)
{
	const char *root = NULL, *arch = "NB-B";
	int port = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--root") && i + 1 < argc)
			root = argv[++i];
		else if (!strcmp(argv[i], "--port") && i + 1 < argc)
			port = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--arch") && i + 1 < argc)
			arch = argv[++i];
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			amted_threads = atoi(argv[++i]);
		else
			usage();
	}
	if (!root)
		usage();
	root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root_fd < 0) {
		perror(root);
		return 1;
	}
	const struct disk_ops *o = NULL;
	int laio_laio = 0;
	if (!strcmp(arch, "NB-B"))
		o = &disk_nbb;
	else if (!strcmp(arch, "NB-LAIO"))
		o = &disk_nblaio;
	else if (!strcmp(arch, "NB-AMTED") || !strcmp(arch, "NB-AMPED"))
		o = &disk_amted;
	else if (!strcmp(arch, "io_uring"))
		o = &disk_uring;
	else if (!strcmp(arch, "LAIO-LAIO"))
		laio_laio = 1;
	else
		usage();

	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (laio_laio ? 0 : SOCK_NONBLOCK), 0);
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 1024) < 0) {
		perror("bind/listen");
		return 1;
	}
	socklen_t al = sizeof a;
	getsockname(lfd, (struct sockaddr *)&a, &al);
	printf("listening on %d\n", ntohs(a.sin_port));
	fflush(stdout);
	int r = laio_laio ? loop_laio(lfd) : loop_epoll(lfd, o);
	printf("requests=%lu connections=%lu\n", nrequests, nconns);
	fflush(stdout);
	return r;
}

/* used by laio_loop.c to keep the same counters */
void count_request(void) { nrequests++; }
void count_conn(void) { nconns++; }
