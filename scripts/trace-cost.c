/*
 * trace-cost.c - what tracing costs a laio_syscall() that does not block (docs/tracing.md),
 * side by side in one run: getppid() through syscall(), through laio_syscall() on a thread that
 * does not trace, and through laio_syscall() on a thread whose laio_init() gives it a timeline
 * file. Rounds alternate between the three so that a noisy machine moves them alike; each
 * figure is the median over the rounds of the mean time of a batch of calls.
 *
 *   cc -O2 -Ilaio scripts/trace-cost.c build/liblaio.a -pthread -o /tmp/trace-cost
 *   /tmp/trace-cost [rounds] [calls per batch]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "laio.h"
#include "../runtime/bench/bench.h"   /* now(), median(), print_machine() */

enum { MAXROUNDS = 101 };

static int rounds = 21;
static long calls = 100000;
static char json[] = "/tmp/trace-cost-XXXXXX";

/* One batch per kind, in turn: the kinds wait for each other so that only one runs at a time. */
enum { RAW, OFF, FILE_ON, KINDS };
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn_cv = PTHREAD_COND_INITIALIZER;
static int turn;                 /* round * KINDS + kind whose batch runs next */
static double ns[KINDS][MAXROUNDS];

static void wait_turn(int want)
{
	pthread_mutex_lock(&lock);
	while (turn != want)
		pthread_cond_wait(&turn_cv, &lock);
	pthread_mutex_unlock(&lock);
}

static void pass_turn(void)
{
	pthread_mutex_lock(&lock);
	turn++;
	pthread_cond_broadcast(&turn_cv);
	pthread_mutex_unlock(&lock);
}

static void *measure(void *arg)
{
	int kind = (int)(long)arg;
	if (kind == FILE_ON) {
		struct laio_config cfg = { .trace_file = json };
		if (laio_init(&cfg) != 0) {
			perror("laio_init");
			exit(1);
		}
	}
	if (kind != RAW)
		laio_syscall(SYS_getppid); /* the thread's set-up, outside the measurement */
	for (int r = 0; r < rounds; r++) {
		wait_turn(r * KINDS + kind);
		double t = now();
		for (long i = 0; i < calls; i++)
			if (kind == RAW)
				syscall(SYS_getppid);
			else
				laio_syscall(SYS_getppid);
		ns[kind][r] = (now() - t) * 1e9 / (double)calls;
		pass_turn();
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		rounds = atoi(argv[1]);
	if (argc > 2)
		calls = atol(argv[2]);
	if (rounds < 1 || rounds > MAXROUNDS || calls < 1) {
		fprintf(stderr, "usage: trace-cost [rounds 1-%d] [calls per batch]\n", MAXROUNDS);
		return 2;
	}
	int fd = mkstemp(json);
	if (fd < 0) {
		perror("mkstemp");
		return 1;
	}
	close(fd);
	pthread_t t[KINDS];
	for (long k = 0; k < KINDS; k++)
		pthread_create(&t[k], NULL, measure, (void *)k);
	for (int k = 0; k < KINDS; k++)
		pthread_join(t[k], NULL);
	print_machine();
	double raw = median(ns[RAW], rounds), off = median(ns[OFF], rounds),
	       on = median(ns[FILE_ON], rounds);
	printf("getppid, median of %d rounds of %ld calls each:\n", rounds, calls);
	printf("  syscall()                          %8.1f ns\n", raw);
	printf("  laio_syscall(), not traced         %8.1f ns  %.3fx syscall()\n", off, off / raw);
	printf("  laio_syscall(), timeline file on   %8.1f ns  %.3fx syscall(), %.2fx not traced\n",
	       on, on / raw, on / off);
	unlink(json);
	return 0;
}
