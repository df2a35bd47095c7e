/*
 * cgnotice.c - how soon a SCHED_IDLE standby runs once its runner blocks, beside one CPU hog
 * per CPU, with and without a cpu cgroup of the VP's own (kernel-shim/cgroup.c).
 *
 * The runner R (the main thread) stores its entry time, sets in_call and read()s an empty pipe;
 * the standby S (SCHED_IDLE, spinning) sees in_call, records the time since R's entry and writes
 * the byte that wakes R. R and S are pinned to CPU 0 (--unpinned: not), the hogs (processes,
 * normal priority, in the process's own cgroup) pinned, one to each CPU (--hogs N: N each). Placements, measured in
 * alternating rounds so that they see the same machine:
 *   base        R and S in the process's cgroup (no VP group)
 *   vp          R and S in one VP group
 *   vp+compute  R and S in one VP group, a CPU-bound thread of the same process on CPU 0 in
 *               the process's cgroup (a thread of the program outside LAIO)
 *   vp+vp       the same, the CPU-bound thread in a second VP group (another VP's runner)
 *   vp+same     the same, the CPU-bound thread in R's VP group (where a thread R creates
 *               starts: the standby is idle relative to it)
 * Before the hogs start it also measures one move (ks_cg_enter or ks_cg_leave: what a hand-off
 * pays per thread it moves). Run as root (or in a delegated cgroup v2 subtree); elsewhere only
 * "base" runs, and the reason is printed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "mb_common.h"
#include "../kernel-shim/cgroup.h"

enum { P_BASE, P_VP, P_VP_COMPUTE, P_VP_VP, P_VP_SAME, NPLACE };
static const char *const place_name[NPLACE] = { "base", "vp", "vp+compute", "vp+vp", "vp+same" };

static int pinned = 1;
static int pipefd[2];
static _Atomic int in_call, stop_compute;
static _Atomic uint64_t t_entry;
static double *lat[NPLACE];
static size_t nlat[NPLACE];
static _Atomic int cur_place;
static pid_t standby_tid;

static void pin(int cpu)
{
	if (pinned)
		mb_pin_self(cpu);
}

static void *standby(void *arg)
{
	(void)arg;
	struct sched_param sp = { 0 };
	pin(0);
	if (sched_setscheduler(0, SCHED_IDLE, &sp) != 0)
		mb_die("SCHED_IDLE");
	__atomic_store_n(&standby_tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	for (;;) {
		if (!atomic_load_explicit(&in_call, memory_order_acquire))
			continue;
		uint64_t t = mb_now_ns();
		int p = atomic_load_explicit(&cur_place, memory_order_relaxed);
		lat[p][nlat[p]++] = (double)(t - atomic_load(&t_entry)) / 1e3;
		atomic_store_explicit(&in_call, 0, memory_order_relaxed);
		if (write(pipefd[1], "x", 1) != 1)
			mb_die("write");
	}
	return NULL;
}

/* A thread starts in its creator's cgroup (R's VP group here): it moves itself where it goes. */
static void *compute(void *arg)
{
	if ((arg ? ks_cg_enter(arg, 0) : ks_cg_leave(0)) != 0)
		mb_fail("moving the CPU-bound thread");
	pin(0);
	volatile unsigned long x = 0;
	while (!atomic_load_explicit(&stop_compute, memory_order_relaxed))
		x++;
	return NULL;
}

static void samples(int n)
{
	char b;
	for (int i = 0; i < n; i++) {
		atomic_store(&t_entry, mb_now_ns());
		atomic_store_explicit(&in_call, 1, memory_order_seq_cst);
		if (read(pipefd[0], &b, 1) != 1)
			mb_die("read");
		usleep(100);
	}
}

/* Both threads to the place's cgroup, then n samples there. */
static void run_place(int p, struct ks_cg *g, struct ks_cg *g2, int n)
{
	int with_compute = p >= P_VP_COMPUTE;
	pid_t tids[2] = { (pid_t)syscall(SYS_gettid), standby_tid };
	pthread_t c;
	for (int i = 0; i < 2; i++) {
		int r = p == P_BASE ? ks_cg_leave(tids[i]) : ks_cg_enter(g, tids[i]);
		if (g && r)
			mb_fail("moving thread %d: %s", tids[i], strerror(-r));
	}
	if (with_compute) {
		atomic_store(&stop_compute, 0);
		if (pthread_create(&c, NULL, compute, p == P_VP_VP ? g2 : p == P_VP_SAME ? g : NULL))
			mb_fail("pthread_create");
	}
	atomic_store(&cur_place, p);
	samples(n);
	if (with_compute) {
		atomic_store(&stop_compute, 1);
		pthread_join(c, NULL);
	}
}

static void report(int p)
{
	char a[32], b[32], c[32], d[32];
	size_t n = nlat[p];
	if (!n)
		return;
	mb_sort(lat[p], n);
	printf("%-11s %6zu  median %10s  p90 %10s  p99 %10s  max %10s\n", place_name[p], n,
	       mb_fmt_ns(mb_pct_sorted(lat[p], n, 50) * 1e3, a, sizeof a),
	       mb_fmt_ns(mb_pct_sorted(lat[p], n, 90) * 1e3, b, sizeof b),
	       mb_fmt_ns(mb_pct_sorted(lat[p], n, 99) * 1e3, c, sizeof c),
	       mb_fmt_ns(lat[p][n - 1] * 1e3, d, sizeof d));
}

/* What a hand-off pays per move: one write() of a tid (enter a group, then back), measured before
 * the hogs start. Of another thread (as the hand-off moves the blocked one) and of the caller. */
static void move_cost(struct ks_cg *g)
{
	enum { N = 5000 };
	static double v[N];
	char a[32], b[32];
	pid_t self = (pid_t)syscall(SYS_gettid);
	for (int who = 0; who < 2; who++) {
		pid_t tid = who ? self : standby_tid;
		for (int i = 0; i < N; i++) {
			uint64_t t0 = mb_now_ns();
			if (ks_cg_enter(g, tid) || ks_cg_leave(tid))
				mb_fail("move");
			v[i] = (double)(mb_now_ns() - t0) / 2;
		}
		mb_sort(v, N);
		printf("# one move (%s):%*s median %s, p99 %s\n", who ? "the caller" : "another thread",
		       who ? 5 : 1, "", mb_fmt_ns(mb_pct_sorted(v, N, 50), a, sizeof a),
		       mb_fmt_ns(mb_pct_sorted(v, N, 99), b, sizeof b));
	}
}

static pid_t start_hog(int cpu)
{
	pid_t pid = fork();
	if (pid < 0)
		mb_die("fork");
	if (pid == 0) {
		pin(cpu);
		alarm(3600);
		for (volatile unsigned long x = 0;; x++)
			;
	}
	return pid;
}

int main(int argc, char **argv)
{
	int per_round = 100, rounds = 5, per_cpu = 1, opt;
	static const struct option lo[] = { { "samples", 1, 0, 's' }, { "rounds", 1, 0, 'r' },
					    { "unpinned", 0, 0, 'u' }, { "quick", 0, 0, 'q' },
					    { "hogs", 1, 0, 'h' }, { 0 } };
	while ((opt = getopt_long(argc, argv, "s:r:uqh:", lo, NULL)) != -1)
		if (opt == 's')
			per_round = atoi(optarg);
		else if (opt == 'r')
			rounds = atoi(optarg);
		else if (opt == 'u')
			pinned = 0;
		else if (opt == 'h')
			per_cpu = atoi(optarg);
		else if (opt == 'q')
			per_round = 30, rounds = 3;
		else
			mb_fail("usage: cgnotice [--samples N per round] [--rounds R] [--hogs per CPU] "
				"[--unpinned] [--quick]");
	struct mb_sysinfo si;
	mb_sysinfo_get(&si);
	mb_sysinfo_print(stdout, &si);
	const char *why;
	int on = ks_cg_init(1, &why);
	struct ks_cg *g = on ? ks_cg_new() : NULL, *g2 = on ? ks_cg_new() : NULL;
	if (on && (!g || !g2))
		mb_die("ks_cg_new");
	printf("# cgroup:               %s (%s)\n", ks_cg_mode(), why);
	printf("# R and S:              %s; %d CPU hog(s) per CPU; %d rounds of %d samples per "
	       "place\n", pinned ? "pinned to CPU 0" : "unpinned", per_cpu, rounds, per_round);
	for (int p = 0; p < NPLACE; p++)
		if (!(lat[p] = malloc(sizeof(double) * (size_t)(rounds * per_round))))
			mb_die("malloc");
	if (pipe(pipefd))
		mb_die("pipe");
	pthread_t s;
	if (pthread_create(&s, NULL, standby, NULL))
		mb_fail("pthread_create");
	while (!__atomic_load_n(&standby_tid, __ATOMIC_ACQUIRE))
		usleep(1000);
	if (g)
		move_cost(g);
	pid_t hogs[256];
	int nhog = si.ncpu * per_cpu < 256 ? si.ncpu * per_cpu : 256;
	for (int h = 0; h < nhog; h++)
		hogs[h] = start_hog(h % si.ncpu);
	pin(0);
	usleep(200000);
	for (int r = 0; r < rounds; r++)
		for (int p = 0; p < (g ? NPLACE : 1); p++)
			run_place(p, g, g2, per_round);
	for (int h = 0; h < nhog; h++) {
		kill(hogs[h], SIGKILL);
		waitpid(hogs[h], NULL, 0);
	}
	printf("%-11s %6s  notice: time from R's entry to S running\n", "place", "n");
	for (int p = 0; p < NPLACE; p++)
		report(p);
	if (g)
		printf("median base / vp: %.0fx\n", mb_pct_sorted(lat[P_BASE], nlat[P_BASE], 50) /
						       mb_pct_sorted(lat[P_VP], nlat[P_VP], 50));
	ks_cg_leave(0);
	return 0; /* the standby still spins: exit ends it; ks_cg_fini moves it out first */
}
