/* test-util.h - shared helpers of the Criterion suites. */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "laio.h"

#if defined(__SANITIZE_THREAD__) && !defined(TEST_UTIL_OWN_RAND_R)
/*
 * Criterion's sandbox (BoxFort) maps a shared arena at 0x2000'0000'0000 + (rand_r() & 0x3fffff)
 * * 16 MiB, probing until it finds an unused range. ThreadSanitizer reserves all of that window
 * but 0x5500'0000'0000-0x5680'0000'0000, so Criterion gives up ("Could not initialize
 * inheritable arena") before any test runs. Under ThreadSanitizer rand_r() draws from that free
 * range only; the suites do not use rand_r() for anything that needs better.
 */
int rand_r(unsigned *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return (int)(0x350000u + (*seed >> 8) % 0x18000u);
}
#endif

/* ThreadSanitizer cannot start threads in the child of a fork() of a multi-threaded process
 * ("starting new threads after multi-threaded fork is not supported"), and a child that uses
 * LAIO starts some. */
#if defined(__SANITIZE_THREAD__)
#define SKIP_FORK_UNDER_TSAN()                                                                 \
	cr_skip_test("ThreadSanitizer does not support threads started after a fork() of a "   \
		     "multi-threaded process")
#else
#define SKIP_FORK_UNDER_TSAN() do { } while (0)
#endif

static const char *const det_names[] = { "auto", "upcall", "probe", "watchdog", "eager", "idle" };

static inline double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Run fn(arg) in a fresh thread configured with detector d (its own virtual processor). Returns
 * 0, or -1 when the detector cannot work here (the caller skips with the reason). */
struct det_run {
	enum laio_detector d;
	void (*fn)(void *);
	void *arg;
	int unavailable;
};

static void *det_thread(void *p)
{
	struct det_run *r = p;
	struct laio_config c = { .detector = r->d };
	if (laio_init(&c) < 0) {
		cr_expect_eq(errno, ENOTSUP, "laio_init(%s): %s", det_names[r->d], strerror(errno));
		r->unavailable = 1;
		return NULL;
	}
	r->fn(r->arg);
	return NULL;
}

static inline int with_detector(enum laio_detector d, void (*fn)(void *), void *arg)
{
	struct det_run r = { d, fn, arg, 0 };
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, det_thread, &r), 0);
	pthread_join(t, NULL);
	if (r.unavailable)
		cr_log_warn("detector %s is not available here: skipped", det_names[d]);
	return r.unavailable ? -1 : 0;
}

/* Wait for exactly `n` completions (at most `secs` seconds); fills out[] and returns the count. */
static inline int poll_n(struct laio_completion *out, int n, double secs)
{
	int got = 0;
	double end = now_s() + secs;
	while (got < n && now_s() < end) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		int r = laio_poll(out + got, n - got, &ts);
		cr_expect_geq(r, 0, "laio_poll: %s", strerror(errno));
		if (r < 0)
			break;
		got += r;
	}
	return got;
}

/* Under a sanitizer everything is several times slower: timing margins of the suites scale. */
static inline long slow_factor(void)
{
	return getenv("LAIO_SANITIZED") ? 5 : 1;
}

static inline void make_pipe(int p[2])
{
	cr_expect_eq(pipe2(p, O_CLOEXEC), 0);
}

/* Worker bodies run on threads whose virtual processor may move between kernel threads: they
 * use cr_expect (records, does not jump) and return early on failure. */
#define EXPECT(cond, ...) do { if (!(cond)) { cr_expect(0, __VA_ARGS__); return; } } while (0)

#endif
