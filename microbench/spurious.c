/*
 * spurious.c - hand-offs of calls that did not block, per detector, on a loaded machine.
 *
 * Two threads spin (CPU hogs at normal priority, unpinned, like any busy neighbour), and a LAIO
 * thread reads one byte at a time from a pipe that always holds data: no read ever blocks, so
 * every EINPROGRESS is a spurious hand-off (a detector took a preempted runner for a blocked
 * one). Reported per detector: reads, EINPROGRESS returns, and what laio_stats() counted as
 * spurious. For each detector a fresh thread runs for --secs seconds (default 3; --quick 1).
 */
#define _GNU_SOURCE
#include <sys/syscall.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "laio.h"
#include "mb_common.h"

static const struct { const char *name; enum laio_detector d; } dets[] = {
	{ "idle", LAIO_DETECT_IDLE },   { "auto", LAIO_DETECT_AUTO },
	{ "upcall", LAIO_DETECT_UPCALL }, { "watchdog", LAIO_DETECT_WATCHDOG },
	{ "probe", LAIO_DETECT_PROBE },
};
#define NDET ((int)(sizeof dets / sizeof dets[0]))

static volatile int stop_hogs;
static double secs = 3;

static void *hog(void *arg)
{
	(void)arg;
	volatile unsigned long x = 0;
	while (!stop_hogs)
		x++;
	return NULL;
}

struct run {
	enum laio_detector d;
	int ok;
	char used[32];
	unsigned long reads, inprogress, spurious, handoffs;
};

static void *reader(void *arg)
{
	struct run *r = arg;
	struct laio_config c = { .detector = r->d };
	if (laio_init(&c) < 0)
		return NULL;
	snprintf(r->used, sizeof r->used, "%s", laio_detector_name(SYS_read));
	int p[2];
	if (pipe(p) != 0)
		mb_die("pipe");
	fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
	static char fill[4096];
	char b;
	uint64_t end = mb_now_ns() + (uint64_t)(secs * 1e9);
	while (mb_now_ns() < end) {
		for (int i = 0; i < 4096; i++)
			if (write(p[1], fill, 1) != 1)
				mb_die("write");
		for (int i = 0; i < 4096; i++) {
			long n = laio_syscall(SYS_read, p[0], &b, 1);
			r->reads++;
			if (n == -1 && errno == EINPROGRESS) {
				struct laio_completion done;
				r->inprogress++;
				if (laio_poll(&done, 1, NULL) != 1 || done.laio_return_value != 1)
					mb_die("a background read did not return its byte");
			} else if (n != 1) {
				mb_die("read: %ld", n);
			}
		}
	}
	struct laio_stats st;
	laio_stats(&st);
	for (int d = 0; d < LAIO_DETECT_COUNT; d++) {
		r->spurious += st.spurious[d];
		r->handoffs += st.handoffs[d];
	}
	close(p[0]);
	close(p[1]);
	r->ok = 1;
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = { { "secs", required_argument, 0, 's' },
					    { "quick", no_argument, 0, 'q' },
					    { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 } };
	int c;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		if (c == 's')
			secs = atof(optarg);
		else if (c == 'q')
			secs = 1;
		else {
			printf("usage: spurious [--secs S (default 3)] [--quick]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	struct mb_sysinfo si;
	mb_output_init();
	mb_sysinfo_get(&si);
	printf("spurious: full-pipe reads (none can block) beside 2 spinning threads, %.0f s per "
	       "detector; every EINPROGRESS is a spurious hand-off\n", secs);
	mb_sysinfo_print(stdout, &si);
	pthread_t h[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&h[i], NULL, hog, NULL);
	printf("%-10s %-10s %12s %12s %10s %16s\n", "detector", "used", "reads", "EINPROGRESS",
	       "rate", "stats: spurious");
	for (int d = 0; d < NDET; d++) {
		struct run r = { .d = dets[d].d };
		mb_progress("spurious: detector %s, %.0f s ...", dets[d].name, secs);
		pthread_t t;
		pthread_create(&t, NULL, reader, &r);
		pthread_join(t, NULL);
		mb_progress_clear();
		if (!r.ok) {
			printf("%-10s skipped: cannot work here\n", dets[d].name);
			continue;
		}
		printf("%-10s %-10s %12lu %12lu %9.4f%% %10lu of %lu\n", dets[d].name, r.used, r.reads,
		       r.inprogress, 100.0 * (double)r.inprogress / (double)r.reads, r.spurious,
		       r.handoffs);
	}
	stop_hogs = 1;
	for (int i = 0; i < 2; i++)
		pthread_join(h[i], NULL);
	return 0;
}
