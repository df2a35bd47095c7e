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
#include <sys/stat.h>
#include <unistd.h>
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

/*
 * A non-blocking form may return less than the blocking call would, where the blocking one
 * waits for more: a regular file partly in the page cache (read() waits for the disk and returns
 * the whole count, unless the file ends first), a stream socket with SO_RCVLOWAT above what is
 * queued (recv() waits for the low-water mark). Then the rest is the call's too: for read,
 * pread64 and recvfrom it goes to the background as a call for the remaining bytes whose result
 * adds the ones already read (returns 2, a[] the rest); for the vectored forms it is read here,
 * synchronously (returns 1). Only short results pay the extra fcntl, fstat, lseek/getsockopt.
 */
static long total_len(const struct iovec *iov, long cnt)
{
	unsigned long t = 0;
	for (long i = 0; i < cnt; i++)
		t += iov[i].iov_len;
	return (long)t;
}

/* Read the rest of a vectored call whose first `done` bytes are in: at most `want` bytes more. */
static long rest_vectored(long nr, const long a[6], long done, long want)
{
	long cnt = nr == SYS_recvmsg ? (long)((const struct msghdr *)a[1])->msg_iovlen : a[2];
	const struct iovec *iov = nr == SYS_recvmsg ? ((const struct msghdr *)a[1])->msg_iov
						    : (const struct iovec *)a[1];
	struct iovec rest[64];
	int n = 0;
	long skip = done;
	for (long i = 0; i < cnt && n < 64 && want > 0; i++) {
		long len = (long)iov[i].iov_len;
		if (skip >= len) {
			skip -= len;
			continue;
		}
		long take = len - skip < want ? len - skip : want;
		rest[n].iov_base = (char *)iov[i].iov_base + skip;
		rest[n++].iov_len = (size_t)take;
		want -= take;
		skip = 0;
	}
	long r;
	if (nr == SYS_recvmsg) {
		struct msghdr mh = *(const struct msghdr *)a[1];
		mh.msg_iov = rest;
		mh.msg_iovlen = (size_t)n;
		r = ks_raw_syscall6(SYS_recvmsg, a[0], (long)&mh, a[2] | MSG_WAITALL, 0, 0, 0);
	} else if (nr == SYS_preadv) {
		r = ks_raw_syscall6(SYS_preadv, a[0], (long)rest, n, a[3] + done, 0, 0);
	} else {
		r = ks_raw_syscall6(SYS_readv, a[0], (long)rest, n, 0, 0, 0);
	}
	return ks_with_prefix(r, done);
}

static int partial(long nr, long a[6], long *raw)
{
	long r = *raw, len;
	switch (nr) {
	case SYS_read: case SYS_pread64: case SYS_recvfrom:
		len = a[2];
		break;
	case SYS_readv: case SYS_preadv:
		len = total_len((const struct iovec *)a[1], a[2]);
		break;
	case SYS_recvmsg: {
		const struct msghdr *mh = (const struct msghdr *)a[1];
		len = total_len(mh->msg_iov, (long)mh->msg_iovlen);
		break;
	}
	default:
		return 1;
	}
	if (r >= len || fd_nonblocking(a[0]))
		return 1; /* whole, or the caller's own non-blocking descriptor: short is the answer */
	struct stat st;
	if (ks_raw_syscall6(SYS_fstat, a[0], (long)&st, 0, 0, 0, 0) != 0)
		return 1;
	long want; /* how many more bytes the blocking call would wait for */
	if (S_ISREG(st.st_mode)) {
		long pos = nr == SYS_pread64 || nr == SYS_preadv
				   ? a[3] + r
				   : ks_raw_syscall6(SYS_lseek, a[0], 0, SEEK_CUR, 0, 0, 0);
		if (pos < 0 || pos >= st.st_size)
			return 1; /* the file ends here: the short count is read()'s too */
		want = len - r;
	} else if (S_ISSOCK(st.st_mode)) {
		int lowat = 1, type = 0;
		socklen_t sl = sizeof lowat, tl = sizeof type;
		if (ks_raw_syscall6(SYS_getsockopt, a[0], SOL_SOCKET, SO_RCVLOWAT, (long)&lowat,
				    (long)&sl, 0) != 0 || lowat <= r ||
		    ks_raw_syscall6(SYS_getsockopt, a[0], SOL_SOCKET, SO_TYPE, (long)&type, (long)&tl,
				    0) != 0 || type != SOCK_STREAM)
			return 1;
		want = (lowat < len ? lowat : len) - r;
	} else {
		return 1; /* pipes and the rest: what is there is what read() returns */
	}
	if (nr == SYS_readv || nr == SYS_preadv || nr == SYS_recvmsg) {
		*raw = rest_vectored(nr, a, r, want);
		return 1;
	}
	a[1] += r;     /* the rest: after the bytes read, up to what the call still waits for */
	a[2] = want;
	if (nr == SYS_pread64)
		a[3] += r;
	return 2;
}

int ks_probe_try(long nr, long a[6], long *raw)
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
	return r > 0 ? partial(nr, a, raw) : 1;
}
