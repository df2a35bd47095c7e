/* disk_nblaio.c - NB-LAIO: epoll for the sockets, LAIO for the disk; laio_fd() is in the epoll
 * set and its completions resume the connection where its disk call left off. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "laio.h"
#include "server.h"

/* Run a disk call through LAIO. Returns 1 with *ret set if it finished, 0 if it went background. */
static int disk_call(struct conn *c, int kind, long *ret, long nr, long a, long b, long d, long e)
{
	disk_calls++;
	long r = laio_syscall(nr, a, b, d, e);
	if (r == -1 && errno == EINPROGRESS) {
		disk_blocked++;
		pending_put(laio_gethandle(), c, kind);
		return 0;
	}
	*ret = r < 0 ? -errno : r;
	return 1;
}

static void after_fstat(struct conn *c, long r)
{
	if (r < 0) {
		close(c->file_fd);
		c->file_fd = -1;
		conn_open_done(c, -1, (int)-r, NULL);
		return;
	}
	int fd = c->file_fd;
	c->file_fd = -1;
	conn_open_done(c, fd, 0, &c->st);
}

static void after_open(struct conn *c, long r)
{
	if (r < 0) {
		conn_open_done(c, -1, (int)-r, NULL);
		return;
	}
	c->file_fd = (int)r;
	if (disk_call(c, K_FSTAT, &r, SYS_fstat, c->file_fd, (long)&c->st, 0, 0))
		after_fstat(c, r);
}

static void nblaio_open(struct conn *c)
{
	long r;
	if (disk_call(c, K_OPEN, &r, SYS_openat, root_fd, (long)c->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0))
		after_open(c, r);
}

static void nblaio_read(struct conn *c)
{
	long r;
	if (disk_call(c, K_READ, &r, SYS_pread64, c->file_fd, (long)c->buf, CHUNK, (long)c->file_off))
		conn_read_done(c, r < 0 ? -1 : r, r < 0 ? (int)-r : 0);
}

static int nblaio_init(void) { return laio_fd(); }

static void nblaio_event(void)
{
	struct laio_completion comp[64];
	const struct timespec zero = { 0, 0 };
	int n;
	do {
		n = laio_poll(comp, 64, &zero);
		for (int i = 0; i < n; i++) {
			int kind;
			struct conn *c = pending_take(comp[i].laio_handle, &kind);
			if (!c)
				continue;
			long r = comp[i].laio_return_value < 0 ? -comp[i].laio_errno : comp[i].laio_return_value;
			if (kind == K_OPEN)
				after_open(c, r);
			else if (kind == K_FSTAT)
				after_fstat(c, r);
			else
				conn_read_done(c, r < 0 ? -1 : r, r < 0 ? (int)-r : 0);
		}
	} while (n == 64);
}

static void nblaio_report(void) { print_laio_stats("NB-LAIO"); }

const struct disk_ops disk_nblaio = { "NB-LAIO", nblaio_init, nblaio_open, nblaio_read, nblaio_event, nblaio_report };
