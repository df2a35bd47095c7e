/* disk_nbb.c - NB-B: non-blocking sockets, blocking disk calls made in the event loop. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "server.h"

static unsigned long calls;

static int nbb_init(void) { return -1; }

static void nbb_open(struct conn *c)
{
	struct stat st;
	calls += 2;
	int fd = openat(root_fd, c->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &st) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		conn_open_done(c, -1, e, NULL);
		return;
	}
	conn_open_done(c, fd, 0, &st);
}

static void nbb_read(struct conn *c)
{
	calls++;
	ssize_t n = pread(c->file_fd, c->buf, CHUNK, c->file_off);
	conn_read_done(c, n, n < 0 ? errno : 0);
}

static void nbb_event(void) {}

static void nbb_report(void)
{
	printf("stats arch=NB-B disk_calls=%lu disk_blocked=n/a\n", calls);
}

const struct disk_ops disk_nbb = { "NB-B", nbb_init, nbb_open, nbb_read, nbb_event, nbb_report };
