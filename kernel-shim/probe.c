/*
 * probe.c - the probe detector: a call that has a non-blocking form is tried in that form
 * first. If it would block (EAGAIN on a descriptor that is not itself non-blocking) the real call
 * is moved to a spare before it blocks. Only calls whose meaning does not depend on the calling
 * thread, and whose non-blocking form returns exactly what the blocking one would when it does
 * not block: reads (any amount available is what a blocking read returns too) and receives
 * without MSG_WAITALL. Writes are not probed: a non-blocking write may be short where the
 * blocking one would not be.
 *
 * On a regular file, preadv2(RWF_NOWAIT) that misses the page cache has already started the
 * read (probes.md, 4e), so the moved call usually finds its data soon.
 */
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <fcntl.h>
#include <errno.h>
#include <limits.h>
#include "ks.h"

#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif

bool ks_probe_applies(long nr)
{
	switch (nr) {
	case SYS_read: case SYS_pread64: case SYS_readv: case SYS_preadv:
	case SYS_recvfrom: case SYS_recvmsg:
		return true;
	}
	return false;
}

static long nowait_read(long fd, const struct iovec *iov, long cnt, long off)
{
	return ks_raw_syscall6(SYS_preadv2, fd, (long)iov, cnt, off, 0, RWF_NOWAIT);
}

static bool fd_nonblocking(long fd)
{
	long fl = ks_raw_syscall6(SYS_fcntl, fd, F_GETFL, 0, 0, 0, 0);
	return fl >= 0 && (fl & O_NONBLOCK);
}

/*
 * read(fd, buf, count) checks the whole range [buf, buf + count) first and then clamps the count
 * to MAX_RW_COUNT; preadv2 with one iovec clamps first and checks only the clamped range, so past
 * that count the two can differ (a short read against EFAULT). With two iovecs the kernel checks
 * each one whole before it clamps, as read() does; the second is empty. An iov_len over SSIZE_MAX
 * would be EINVAL, so it is cut to SSIZE_MAX, which fails the range check just as read()'s count
 * does (no user range is that long).
 */
#define KS_MAX_RW_COUNT 0x7ffff000UL

static long nowait_read_one(long fd, long buf, unsigned long count, long off)
{
	struct iovec iov[2] = { { (void *)buf, count }, { NULL, 0 } };

	if (count <= KS_MAX_RW_COUNT)
		return nowait_read(fd, iov, 1, off);
	if (count > (unsigned long)SSIZE_MAX)
		iov[0].iov_len = SSIZE_MAX;
	return nowait_read(fd, iov, 2, off);
}

int ks_probe_try(long nr, const long a[6], long *raw)
{
	long r;

	switch (nr) {
	case SYS_read:
		r = nowait_read_one(a[0], a[1], (unsigned long)a[2], -1);
		break;
	case SYS_pread64:
		if (a[3] < 0)
			return -1; /* pread's EINVAL; preadv2 would read at the file position */
		r = nowait_read_one(a[0], a[1], (unsigned long)a[2], a[3]);
		break;
	case SYS_readv:
		r = nowait_read(a[0], (const struct iovec *)a[1], a[2], -1);
		break;
	case SYS_preadv:
		if (a[3] < 0)
			return -1;
		r = nowait_read(a[0], (const struct iovec *)a[1], a[2], a[3]);
		break;
	case SYS_recvfrom:
		if (a[3] & (MSG_WAITALL | MSG_DONTWAIT))
			return -1;
		r = ks_raw_syscall6(SYS_recvfrom, a[0], a[1], a[2], a[3] | MSG_DONTWAIT, a[4], a[5]);
		break;
	case SYS_recvmsg:
		if (a[2] & (MSG_WAITALL | MSG_DONTWAIT))
			return -1;
		r = ks_raw_syscall6(SYS_recvmsg, a[0], a[1], a[2] | MSG_DONTWAIT, 0, 0, 0);
		break;
	default:
		return -1;
	}
	if (r == -EOPNOTSUPP || r == -EINVAL)
		return -1; /* no non-blocking form for this descriptor: the real call decides */
	if (r == -EAGAIN && !fd_nonblocking(a[0]))
		return 0;  /* would block */
	*raw = r;
	return 1;
}
