/*
 * rt_upcalls.c - watch the upcalls that drive the runtime's user threads.
 *
 *   make examples && build/docs/examples/rt_upcalls
 *
 * One virtual processor (VP), four user threads: one computes, three sleep in a blocking system
 * call. With tracing on, the runtime prints a line for each scheduling event; the threads'
 * own lines are indented. All of it goes to stderr, in order:
 *
 *   upcall BLOCKED      a thread's rt_syscall() blocked in the kernel. Note the kernel thread
 *                       id: the VP goes on on another kernel thread (a new activation), and
 *                       the blocked one stays in the kernel with the call.
 *   runs thread N       the upcall handler runs the next ready thread.
 *   ... finished ...    a blocked call completed; "seen at a scheduling point" means the busy
 *                       VP noticed it when a thread yielded, without an upcall.
 *   releases the processor / upcall UNBLOCKED
 *                       nothing to run: the VP parks (sa_release) until a completion or a
 *                       wakeup makes the kernel upcall it again.
 *
 * The sleeps overlap although there is one VP, and the computing thread runs meanwhile: that is
 * the point of scheduler activations. The last thread first waits for the computation to end
 * (rt_join parks it), then sleeps with nothing else left to run: the VP releases itself, and the
 * completion arrives by an UNBLOCKED upcall.
 */
#include <stdio.h>
#include <time.h>
#include <sys/syscall.h>
#include "rt.h"

static void *sleeper(void *arg)
{
	long ms = (long)arg;
	struct timespec ts = { 0, ms * 1000000L };
	fprintf(stderr, "        thread %lu: sleeping %ld ms\n",
		(unsigned long)rt_thread_id(rt_self()), ms);
	long r = rt_syscall(SYS_nanosleep, &ts, NULL); /* blocks: the VP runs someone else */
	fprintf(stderr, "        thread %lu: woke up (nanosleep returned %ld)\n",
		(unsigned long)rt_thread_id(rt_self()), r);
	return NULL;
}

static void *computer(void *arg)
{
	volatile double x = 0;
	(void)arg;
	for (int round = 0; round < 10; round++) {
		rt_yield(); /* a scheduling point: finished sleeps are picked up here */
		for (int i = 0; i < 3000000; i++) /* about 10 ms of work */
			x += i * 0.5;
		fprintf(stderr, "        thread %lu: computed round %d\n",
			(unsigned long)rt_thread_id(rt_self()), round);
	}
	return NULL;
}

static void *after_computer(void *computer_thread)
{
	fprintf(stderr, "        thread %lu: waiting for the computation\n",
		(unsigned long)rt_thread_id(rt_self()));
	rt_join(computer_thread, NULL); /* parks this thread, not the VP */
	return sleeper((void *)20L);
}

int main(void)
{
	struct rt_config cfg = { .nvp = 1, .trace = 1 };
	int e = rt_init_config(&cfg);
	if (e) {
		fprintf(stderr, "rt_init: error %d\n", e);
		return 1;
	}
	rt_thread_t *computing = rt_spawn(computer, NULL);
	rt_thread_t *t[3] = {
		rt_spawn(sleeper, (void *)30L),
		rt_spawn(sleeper, (void *)15L),
		rt_spawn(after_computer, computing),
	};
	for (int i = 0; i < 3; i++)
		rt_join(t[i], NULL);
	struct rt_stats st;
	rt_stats(&st);
	fprintf(stderr, "%lu BLOCKED upcalls, %lu UNBLOCKED upcalls, %lu completions (%lu seen without an "
		"upcall), %lu switches\n", st.upcalls_blocked, st.upcalls_unblocked, st.completions,
		st.polled, st.switches);
	rt_shutdown();
	return 0;
}
