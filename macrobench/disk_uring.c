/* disk_uring.c - io_uring: open and read go through io_uring (fstat of an open file is done
 * directly: its inode is in memory); completions arrive through a registered eventfd. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "server.h"

static struct io_uring ring;
static int efd = -1;
static unsigned long calls, queued;

static int uring_init(void)
{
	int r = io_uring_queue_init(1024, &ring, 0);
	if (r < 0) {
		fprintf(stderr, "io_uring_queue_init: %s\n", strerror(-r));
		exit(1);
	}
	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	io_uring_register_eventfd(&ring, efd);
	return efd;
}

static struct io_uring_sqe *sqe_get(void)
{
	struct io_uring_sqe *s = io_uring_get_sqe(&ring);
	if (!s) {
		io_uring_submit(&ring);
		s = io_uring_get_sqe(&ring);
		if (!s)
			abort();
	}
	return s;
}

static void uring_open(struct conn *c)
{
	struct io_uring_sqe *s = sqe_get();
	io_uring_prep_openat(s, root_fd, c->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0);
	io_uring_sqe_set_data(s, (void *)((uintptr_t)c | 1));
	calls += 2;
	io_uring_submit(&ring);
}

static void uring_read(struct conn *c)
{
	struct io_uring_sqe *s = sqe_get();
	io_uring_prep_read(s, c->file_fd, c->buf, CHUNK, (uint64_t)c->file_off);
	io_uring_sqe_set_data(s, (void *)((uintptr_t)c | 2));
	calls++;
	io_uring_submit(&ring);
}

static void uring_event(void)
{
	uint64_t v;
	if (read(efd, &v, sizeof v) < 0 && errno != EAGAIN)
		return;
	struct io_uring_cqe *cqe;
	while (io_uring_peek_cqe(&ring, &cqe) == 0) {
		uintptr_t d = (uintptr_t)io_uring_cqe_get_data(cqe);
		int res = cqe->res;
		io_uring_cqe_seen(&ring, cqe);
		struct conn *c = (struct conn *)(d & ~(uintptr_t)3);
		if ((d & 3) == 1) {
			if (res < 0) {
				conn_open_done(c, -1, -res, NULL);
			} else if (fstat(res, &c->st) < 0) {
				int e = errno;
				close(res);
				conn_open_done(c, -1, e, NULL);
			} else {
				conn_open_done(c, res, 0, &c->st);
			}
		} else {
			conn_read_done(c, res < 0 ? -1 : res, res < 0 ? -res : 0);
		}
	}
}

static void uring_report(void)
{
	(void)queued;
	printf("stats arch=io_uring disk_calls=%lu disk_blocked=n/a\n", calls);
}

const struct disk_ops disk_uring = { "io_uring", uring_init, uring_open, uring_read, uring_event, uring_report };
