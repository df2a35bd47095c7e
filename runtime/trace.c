/*
 * trace.c - a line per scheduling event, for learning and debugging (RT_TRACE=1).
 *
 * Written with one write(2) per line, straight to the kernel: it runs in upcall handlers and
 * between user threads, where it must not block in the runtime nor change errno. The kernel
 * thread id shows the activation: it changes when a call blocks and the VP moves on.
 */
#include <sys/syscall.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include "rt-internal.h"

void rt_trace(struct rt_vp *vp, const char *fmt, ...)
{
	int saved = errno;
	char buf[256];
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	double ms = (double)(ns - rt_g.trace_t0) / 1e6;
	int n = snprintf(buf, sizeof buf, "%9.3f ms  vp%d (kernel thread %ld)  ", ms, vp ? vp->id : -1,
			 syscall(SYS_gettid));
	va_list ap;
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof buf)
		n += vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof buf - 1)
		n = (int)sizeof buf - 2;
	buf[n++] = '\n';
	if (write(2, buf, (size_t)n) < 0) {
		/* nothing to do: tracing is best effort */
	}
	errno = saved;
}
