/*
 * preempt_bench.c - what the optional time slices (rt_config.quantum_us) cost and what they buy.
 *
 *   make -C runtime/bench preempt        (after `make` at the top level)
 *
 * On one VP, for the quanta off (cooperative), 10 ms, 1 ms and 200 us (each figure the median
 * of several runs):
 *   alone     a CPU-bound thread alone on its VP: the ticker's looks are all it pays (no other
 *             thread is ready, so it is never signalled). Time against cooperative.
 *   shared    two CPU-bound threads on the VP: each slice ends with a signal and a switch.
 *             Time for both against cooperative (which runs one after the other), and the cost
 *             of one preemption: the extra time over the preemptions.
 *   latency   a thread made ready while another computes for 200 ms on the same VP: how long
 *             until it first runs. Cooperative: when the other finishes; with a quantum: one to
 *             two quanta.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "rt.h"
#include "bench.h"

static void start(unsigned quantum_us)
{
	struct rt_config c = { .nvp = 1, .quantum_us = quantum_us };
	int e = rt_init_config(&c);
	if (e) {
		fprintf(stderr, "rt_init_config(quantum %u us): %s\n", quantum_us, strerror(e));
		exit(1);
	}
}

#define RUNS 5
static long work_iters;

/* Pure computation with no runtime call: what preemption exists for. */
static void *compute(void *arg)
{
	(void)arg;
	volatile unsigned long x = 1;
	for (long i = 0; i < work_iters; i++)
		x = x * 6364136223846793005ul + 1442695040888963407ul;
	return NULL;
}

/* `nthreads` CPU-bound threads on one VP: wall seconds; *preempt gets the preemptions. */
static double run_compute(unsigned quantum_us, int nthreads, unsigned long *preempt)
{
	start(quantum_us);
	rt_thread_t *t[2];
	double t0 = now();
	for (int i = 0; i < nthreads; i++)
		t[i] = rt_spawn(compute, NULL);
	for (int i = 0; i < nthreads; i++)
		rt_join(t[i], NULL);
	double s = now() - t0;
	struct rt_stats st;
	rt_stats(&st);
	*preempt = st.preemptions;
	rt_shutdown();
	return s;
}

/* ---- latency ---- */
static double hog_until, first_run;

static void *hog(void *arg)
{
	(void)arg;
	volatile unsigned long x = 1;
	while (now() < hog_until)
		for (int i = 0; i < 1000; i++)
			x = x * 6364136223846793005ul + 1442695040888963407ul;
	return NULL;
}

static void *late(void *arg)
{
	(void)arg;
	first_run = now();
	return NULL;
}

static double run_latency(unsigned quantum_us)
{
	start(quantum_us);
	double t0 = now();
	hog_until = t0 + 0.2;
	rt_thread_t *a = rt_spawn(hog, NULL);
	rt_thread_t *b = rt_spawn(late, NULL);
	rt_join(a, NULL);
	rt_join(b, NULL);
	rt_shutdown();
	return first_run - t0;
}

int main(void)
{
	unsetenv("RT_QUANTUM_US");
	print_machine();
	/* calibrate: about 300 ms of computation */
	work_iters = 10000000;
	unsigned long p;
	double s = run_compute(0, 1, &p);
	work_iters = (long)((double)work_iters * 0.3 / s);

	static const unsigned quanta[] = { 0, 10000, 1000, 200 };
	const char *names[] = { "off", "10 ms", "1 ms", "200 us" };
	enum { NQ = 4 };
	double alone[NQ], shared[NQ], lat[NQ];
	unsigned long pre[NQ];
	for (int q = 0; q < NQ; q++) {
		double r[RUNS], r2[RUNS], l[RUNS];
		unsigned long pr[RUNS];
		for (int k = 0; k < RUNS; k++) {
			r[k] = run_compute(quanta[q], 1, &p);
			r2[k] = run_compute(quanta[q], 2, &pr[k]);
			l[k] = run_latency(quanta[q]);
		}
		alone[q] = median(r, RUNS);
		double sorted[RUNS];
		memcpy(sorted, r2, sizeof sorted);
		shared[q] = median(sorted, RUNS);
		unsigned long most = 0;
		for (int k = 0; k < RUNS; k++)
			if (r2[k] == shared[q])
				most = pr[k];
		pre[q] = most;
		lat[q] = median(l, RUNS);
	}
	printf("one VP; each figure the median of %d runs; work: %.0f ms of computation per thread\n",
	       RUNS, alone[0] * 1e3);
	printf("%-8s %22s %34s %28s\n", "quantum", "alone (x off)", "two threads (x off, preemptions)",
	       "latency (ms, x quantum)");
	for (int q = 0; q < NQ; q++) {
		char lq[32] = "";
		if (quanta[q])
			snprintf(lq, sizeof lq, ", %.2fx", lat[q] * 1e6 / quanta[q]);
		printf("%-8s %14.1f ms %.4fx %17.1f ms %.4fx, %5lu %18.2f ms%s\n", names[q],
		       alone[q] * 1e3, alone[q] / alone[0], shared[q] * 1e3, shared[q] / shared[0],
		       pre[q], lat[q] * 1e3, lq);
	}
	if (pre[NQ - 1])
		printf("quantum %s: %.1f us per preemption (two threads' extra time over cooperative / "
		       "preemptions; with fewer preemptions the difference is within the noise)\n",
		       names[NQ - 1], (shared[NQ - 1] - shared[0]) * 1e6 / (double)pre[NQ - 1]);
	return 0;
}
