/*
 * rt_bench.c - what the runtime's operations cost on this machine.
 *
 *   make -C runtime/bench run        (after `make` at the top level)
 *
 * Each figure is the median of several runs:
 *   switch      one user-level context switch: two threads on one VP rt_yield() to each other
 *               (the run-queue work of a yield included)
 *   handoff     a round trip between threads pinned to two VPs through rt_mutex/rt_cond
 *   spawn+join  rt_spawn() and rt_join() of a thread that returns at once, from a user thread
 *   block       from a thread's blocking rt_syscall() to the next thread running on its VP (the
 *               shim's detection and the upcall included), per detector that works here
 *   10k sleep   10,000 threads each sleep 10-50 ms in a blocking call on 2 VPs: wall time
 *               against the longest sleep
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/syscall.h>
#include "rt.h"
#include "bench.h"

#define RUNS 7

/* ---- switch ---- */
static long yields;

static void *yielder(void *arg)
{
	(void)arg;
	for (long i = 0; i < yields; i++)
		rt_yield();
	return NULL;
}

static void *two_yielders(void *arg)
{
	(void)arg;
	rt_thread_t *a = rt_spawn(yielder, NULL), *b = rt_spawn(yielder, NULL);
	rt_join(a, NULL);
	rt_join(b, NULL);
	return NULL;
}

static double bench_switch(void)
{
	double r[RUNS];
	yields = 1000000;
	rt_init(1);
	for (int k = 0; k < RUNS; k++) {
		double t0 = now();
		rt_join(rt_spawn(two_yielders, NULL), NULL);
		r[k] = (now() - t0) * 1e9 / (2.0 * (double)yields);
	}
	rt_shutdown();
	return median(r, RUNS);
}

/* ---- handoff across VPs ---- */
static rt_mutex_t m = RT_MUTEX_INIT;
static rt_cond_t c = RT_COND_INIT;
static int turn;
static long rounds;

static void *pp(void *arg)
{
	int me = (int)(long)arg;
	for (long i = 0; i < rounds; i++) {
		rt_mutex_lock(&m);
		while (turn != me)
			rt_cond_wait(&c, &m);
		turn = !me;
		rt_cond_signal(&c);
		rt_mutex_unlock(&m);
	}
	return NULL;
}

static double bench_handoff(void)
{
	double r[RUNS];
	rounds = 20000;
	rt_init(2);
	for (int k = 0; k < RUNS; k++) {
		struct rt_attr a0 = { 0, 0 }, a1 = { 0, 1 };
		turn = 0;
		double t0 = now();
		rt_thread_t *x = rt_spawn_attr(&a0, pp, (void *)0L);
		rt_thread_t *y = rt_spawn_attr(&a1, pp, (void *)1L);
		rt_join(x, NULL);
		rt_join(y, NULL);
		r[k] = (now() - t0) * 1e6 / (double)rounds;
	}
	rt_shutdown();
	return median(r, RUNS);
}

/* ---- spawn + join ---- */
static void *nothing(void *arg)
{
	return arg;
}

static void *spawner(void *arg)
{
	long n = (long)arg;
	for (long i = 0; i < n; i++)
		rt_join(rt_spawn(nothing, NULL), NULL);
	return NULL;
}

static double bench_spawn(void)
{
	double r[RUNS];
	long n = 200000;
	rt_init(1);
	for (int k = 0; k < RUNS; k++) {
		double t0 = now();
		rt_join(rt_spawn(spawner, (void *)n), NULL);
		r[k] = (now() - t0) * 1e9 / (double)n;
	}
	rt_shutdown();
	return median(r, RUNS);
}

/* ---- block: blocking call to the next thread running ---- */
#define NBLOCK 2000
static double entered, lat[NBLOCK];
static int nlat;

static void *block_once(void *arg)
{
	double t = now();
	if (entered > 0 && nlat < NBLOCK)
		lat[nlat++] = (t - entered) * 1e6;
	struct timespec ts = { 0, (long)arg * 1000000L };
	entered = now();
	rt_syscall(SYS_nanosleep, &ts, NULL);
	return NULL;
}

static double bench_block(int detector)
{
	struct rt_config cfg = { .nvp = 1, .detector = detector };
	if (rt_init_config(&cfg) != 0)
		return -1;
	rt_thread_t **t = malloc(sizeof(*t) * NBLOCK);
	entered = 0;
	nlat = 0;
	for (int i = 0; i < NBLOCK; i++)
		t[i] = rt_spawn(block_once, (void *)(long)(5 + i % 20));
	for (int i = 0; i < NBLOCK; i++)
		rt_join(t[i], NULL);
	free(t);
	rt_shutdown();
	return median(lat, nlat);
}

/* ---- 10,000 sleepers ---- */
static void *sleeper(void *arg)
{
	struct timespec ts = { 0, (long)arg * 1000000L };
	rt_syscall(SYS_nanosleep, &ts, NULL);
	return NULL;
}

static void bench_10k(void)
{
	const int n = 10000;
	double r[3];
	long longest = 0;
	rt_thread_t **t = malloc(sizeof(*t) * n);
	rt_init(2);
	for (int k = 0; k < 3; k++) {
		unsigned seed = 1;
		double t0 = now();
		for (int i = 0; i < n; i++) {
			seed = seed * 1103515245u + 12345u;
			long ms = 10 + (seed >> 16) % 41;
			longest = ms > longest ? ms : longest;
			t[i] = rt_spawn(sleeper, (void *)ms);
		}
		for (int i = 0; i < n; i++)
			rt_join(t[i], NULL);
		r[k] = now() - t0;
	}
	rt_shutdown();
	free(t);
	double med = median(r, 3);
	printf("10k sleep    %8.3f s wall (median of 3; longest sleep %ld ms: %.1fx; "
	       "serially ~150 s on 2 VPs)\n", med, longest, med * 1000 / (double)longest);
}

int main(int argc, char **argv)
{
	const char *only = argc > 1 ? argv[1] : NULL;
	print_machine();
	static const char *dets[] = { "auto", "upcall", "probe", "watchdog", "eager", "idle" };
	if (!only || !strcmp(only, "switch"))
		printf("switch       %8.1f ns\n", bench_switch());
	if (!only || !strcmp(only, "handoff"))
		printf("handoff      %8.2f us round trip between VP0 and VP1\n", bench_handoff());
	if (!only || !strcmp(only, "spawn"))
		printf("spawn+join   %8.1f ns\n", bench_spawn());
	if (!only || !strcmp(only, "block"))
		for (int d = RT_DETECT_AUTO; d <= RT_DETECT_IDLE; d++) {
			if (d == RT_DETECT_PROBE)
				continue; /* nanosleep has no non-blocking form: it would not block-switch */
			double us = bench_block(d);
			if (us < 0)
				printf("block        %8s  detector %s not available here\n", "-", dets[d]);
			else
				printf("block        %8.1f us (median) to the next thread, detector %s\n",
				       us, dets[d]);
		}
	if (!only || !strcmp(only, "10k"))
		bench_10k();
	return 0;
}
