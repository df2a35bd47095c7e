/*
 * pb_laio.c - the LAIO variant, once per block detector.
 *
 * Each run happens in a fresh pthread (it inherits the caller's CPU affinity) that calls
 * laio_init() with the detector before its first laio_syscall(), so every run gets its own
 * configuration and its own virtual processor. The loop is the paper's handler:
 *
 *     r = laio_syscall(SYS_read, fd, &c, 1);
 *     if (r == -1 && errno == EINPROGRESS) { h = laio_gethandle(); ... laio_poll(...) }
 *
 * In EMPTY mode the writer is asked for the byte once laio_syscall() has returned EINPROGRESS.
 * With the eager detector every call returns EINPROGRESS, even on a full pipe.
 */
#define _GNU_SOURCE
#include "pipebench.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "laio.h"
#include "mb_laio.h"

struct laio_job {
	const struct pb_ctx *ctx;
	struct pb_result *res;
	int detector;
};

static const char *why_notsup(int detector)
{
	switch (detector) {
	case LAIO_DETECT_UPCALL:
		return "the upcall detector needs perf_event_open() of a context-switch event "
		       "counted in the kernel (root, CAP_PERFMON or perf_event_paranoid <= 1)";
	default:
		return "the library reports this detector cannot work here";
	}
}

static void wait_completion(const struct pb_ctx *ctx, long i, void *h)
{
	struct laio_completion comp;
	mb_poll_one(&comp);
	if (h && comp.laio_handle != h)
		mb_fail("%s: read %ld: laio_poll reported handle %p, laio_gethandle() said %p",
			ctx->label, i, comp.laio_handle, h);
	if (comp.laio_return_value != 1)
		pb_bad_read("laio background read", ctx, i, comp.laio_return_value,
			    comp.laio_errno);
}

static void *laio_thread(void *arg)
{
	struct laio_job *job = arg;
	const struct pb_ctx *ctx = job->ctx;
	struct pb_result *res = job->res;

	struct laio_config cfg = {.detector = (enum laio_detector)job->detector};
	if (laio_init(&cfg) == -1) {
		if (errno == ENOTSUP) {
			snprintf(res->skip_reason, sizeof res->skip_reason,
				 "laio_init: %s: %s", strerror(errno), why_notsup(job->detector));
			return NULL;
		}
		mb_die("laio_init(detector %d)", job->detector);
	}
	snprintf(res->detector, sizeof res->detector, "%s", laio_detector_name(SYS_read));

	char c;
	int empty = ctx->mode == PB_EMPTY;
	struct mb_watch *w = ctx->watch;
	unsigned long missed_warm = 0, missed_timed = 0;
	struct laio_stats s0, s1;
	memset(&s0, 0, sizeof s0);
	PB_LOOP(ctx, res, laio_stats(&s0), {
		pb_step(ctx, i);
		atomic_store_explicit(&w->phase, MB_PH_SYSCALL, memory_order_relaxed);
		long r = laio_syscall(SYS_read, ctx->rfd, &c, 1);
		int e = errno;
		atomic_store_explicit(&w->phase, MB_PH_WAIT, memory_order_relaxed);
		if (r == 1) {
			if (empty) {
				/* Only the watchdog's rescue byte can complete it: a missed block. */
				if (i < ctx->warm)
					missed_warm++;
				else
					missed_timed++;
				if (missed_warm + missed_timed >= PB_MAX_MISSED) {
					res->failed = 1;
					snprintf(res->skip_reason, sizeof res->skip_reason,
						 "run stopped: %d missed blocks, the last at read "
						 "%ld", PB_MAX_MISSED, i);
					break;
				}
			}
		} else if (r == -1 && e == EINPROGRESS) {
			void *h = laio_gethandle();
			if (empty)
				pb_kick(ctx);
			wait_completion(ctx, i, h);
		} else {
			pb_bad_read("laio_syscall(SYS_read)", ctx, i, r, e);
		}
	});
	atomic_store_explicit(&w->phase, MB_PH_OTHER, memory_order_relaxed);
	laio_stats(&s1);
	res->calls = s1.calls - s0.calls;
	res->blocked = s1.blocked - s0.blocked;
	res->missed_warm = missed_warm;
	res->missed_timed = missed_timed;
	if (res->failed)
		return NULL;
	if (s1.in_flight != 0)
		mb_fail("%s: %lu background calls still in flight after the run", ctx->label,
			s1.in_flight);
	res->ran = 1;
	return NULL;
}

void pb_run_laio(const struct pb_ctx *ctx, struct pb_result *res, int detector)
{
	struct laio_job job = {ctx, res, detector};
	pthread_t t;
	int e = pthread_create(&t, NULL, laio_thread, &job);
	if (e) {
		errno = e;
		mb_die("pthread_create(laio run)");
	}
	e = pthread_join(t, NULL);
	if (e) {
		errno = e;
		mb_die("pthread_join(laio run)");
	}
}
