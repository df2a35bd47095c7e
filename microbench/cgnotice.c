/*
 * cgnotice.c - how soon a blocked call comes back EINPROGRESS with the VP's cpu cgroup and
 * without it, on a quiet machine and beside one CPU hog per CPU.
 *
 * Default (the library): in alternating rounds, a child process per way (laio_config.cgroup 1:
 * the VP in a cpu cgroup of its own; -1: not) makes `--samples` laio_syscall(read) calls on an
 * empty pipe, each timed from the call to its EINPROGRESS, then completes it (a byte written,
 * laio_poll), --gap-us apart (default 200). Every round measures both ways quiet (the hogs stopped) and beside the hogs (CPU-
 * bound processes, normal priority, in the process's own cgroup, one pinned to each CPU; --hogs
 * N: N each). The runner is unpinned (--pinned: on CPU 0). Per condition and way: the spread,
 * which detector caught the calls (idle, or the watchdog's backstop), calls that ran
 * synchronously, and the child's CPU time over half a second with nothing to do.
 *
 * --placements: the mechanism without the library. The runner R (the main thread) stores its
 * entry time, sets in_call and read()s an empty pipe; the standby S (SCHED_IDLE, spinning) sees
 * in_call, records the time since R's entry and writes the byte that wakes R. R and S are
 * pinned to CPU 0 (--unpinned: not). Placements, measured in alternating rounds:
 *   base        R and S in the process's cgroup (no VP group)
 *   vp          R and S in one VP group
 *   vp+compute  R and S in one VP group, a CPU-bound thread of the same process on CPU 0 in
 *               the process's cgroup (a thread of the program outside LAIO)
 *   vp+vp       the same, the CPU-bound thread in a second VP group (another VP's runner)
 *   vp+same     the same, the CPU-bound thread in R's VP group (where a thread R creates
 *               starts: the standby is idle relative to it)
 * Before the hogs start it also measures one move (ks_cg_enter or ks_cg_leave: what a hand-off
 * pays per thread it moves).
 *
 * Run as root (or in a delegated cgroup v2 subtree); elsewhere the groups cannot be made, and
 * the reason is printed.
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
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include "mb_common.h"
#include "laio.h"
#include "../kernel-shim/cgroup.h"

enum { P_BASE, P_VP, P_VP_COMPUTE, P_VP_VP, P_VP_SAME, NPLACE };
static const char *const place_name[NPLACE] = { "base", "vp", "vp+compute", "vp+vp", "vp+same" };

static int pinned = 1;
static int gap_us = 200; /* between two blocked reads of the library's run */
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

static int placements(const struct mb_sysinfo *si, int per_round, int rounds, int per_cpu)
{
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
	int nhog = si->ncpu * per_cpu < 256 ? si->ncpu * per_cpu : 256;
	for (int h = 0; h < nhog; h++)
		hogs[h] = start_hog(h % si->ncpu);
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

/* ---- the library, both ways ---------------------------------------------------------------- */

enum { QUIET, HOGS, NCOND };
static const char *const cond_name[NCOND] = { "quiet", "hogs" };
enum { WAY_OFF, WAY_ON, NWAY };

/* What a child sends back before its samples. */
struct lib_head {
	int n;                 /* samples that follow (us) */
	unsigned long idle, watchdog, other, sync;
	double idle_cpu_ms;    /* its CPU time over IDLE_LOOK_US with nothing to do */
	char mode[8];          /* laio_stats.cgroup */
	char why[256];
};
#define IDLE_LOOK_US 500000

static double cpu_ms(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static void send_all(int fd, const void *buf, size_t len)
{
	for (const char *p = buf; len;) {
		ssize_t w = write(fd, p, len);
		if (w <= 0)
			_exit(3);
		p += w;
		len -= (size_t)w;
	}
}

/* In the child: n blocked reads, each timed from the call to its EINPROGRESS. */
static void lib_child(int way, int n, int out)
{
	struct laio_config c = { .cgroup = way == WAY_ON ? 1 : -1 };
	struct lib_head h = { 0 };
	struct laio_completion done;
	struct laio_stats st;
	double *v = malloc(sizeof(double) * (size_t)n);
	int p[2];
	char b;
	if (pinned)
		mb_pin_self(0);
	if (!v || pipe(p) || laio_init(&c))
		_exit(2);
	for (int i = -5; i < n; i++) { /* five first calls warm the pool */
		uint64_t t0 = mb_now_ns();
		long r = laio_syscall(SYS_read, p[0], &b, 1);
		uint64_t t1 = mb_now_ns();
		if (r != -1 || errno != EINPROGRESS) {
			h.sync += i >= 0; /* ran synchronously: it read nothing, the pipe is empty */
			continue;
		}
		if (i >= 0)
			v[h.n++] = (double)(t1 - t0) / 1e3;
		if (write(p[1], "x", 1) != 1 || laio_poll(&done, 1, NULL) != 1)
			_exit(4);
		if (gap_us)
			usleep((useconds_t)gap_us);
	}
	double c0 = cpu_ms();
	usleep(IDLE_LOOK_US);
	h.idle_cpu_ms = cpu_ms() - c0;
	laio_stats(&st);
	h.idle = st.handoffs[LAIO_DETECT_IDLE];
	h.watchdog = st.handoffs[LAIO_DETECT_WATCHDOG];
	for (int d = 0; d < LAIO_DETECT_COUNT; d++)
		h.other += d != LAIO_DETECT_IDLE && d != LAIO_DETECT_WATCHDOG ? st.handoffs[d] : 0;
	snprintf(h.mode, sizeof h.mode, "%s", st.cgroup);
	snprintf(h.why, sizeof h.why, "%s", st.cgroup_why);
	send_all(out, &h, sizeof h);
	send_all(out, v, sizeof(double) * (size_t)h.n);
	_exit(0);
}

static int read_all(int fd, void *buf, size_t len)
{
	for (char *p = buf; len;) {
		ssize_t r = read(fd, p, len);
		if (r <= 0)
			return -1;
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

struct lib_result {
	double *v;
	size_t n;
	unsigned long idle, watchdog, other, sync;
	double idle_cpu_ms[64];
	int runs;
	char mode[8], why[256];
};

/* One child's run of one way, its samples added to r. */
static void lib_run(int way, int n, struct lib_result *r)
{
	int p[2];
	struct lib_head h;
	if (pipe(p))
		mb_die("pipe");
	pid_t pid = fork();
	if (pid < 0)
		mb_die("fork");
	if (pid == 0) {
		close(p[0]);
		lib_child(way, n, p[1]);
	}
	close(p[1]);
	if (read_all(p[0], &h, sizeof h) || read_all(p[0], r->v + r->n, sizeof(double) * (size_t)h.n))
		mb_fail("a measuring child failed");
	close(p[0]);
	waitpid(pid, NULL, 0);
	r->n += (size_t)h.n;
	r->idle += h.idle;
	r->watchdog += h.watchdog;
	r->other += h.other;
	r->sync += h.sync;
	if (r->runs < 64)
		r->idle_cpu_ms[r->runs] = h.idle_cpu_ms;
	r->runs++;
	snprintf(r->mode, sizeof r->mode, "%s", h.mode);
	snprintf(r->why, sizeof r->why, "%s", h.why);
}

static void hogs_signal(const pid_t *hogs, int nhog, int sig)
{
	for (int h = 0; h < nhog; h++)
		kill(hogs[h], sig);
}

static void lib_report(const char *cond, struct lib_result *r)
{
	char a[32], b[32], c[32], d[32], e[32];
	int runs = r->runs < 64 ? r->runs : 64;
	if (!r->n) {
		printf("%-6s %-4s  no call went to the background\n", cond, r->mode);
		return;
	}
	mb_sort(r->v, r->n);
	mb_sort(r->idle_cpu_ms, (size_t)runs);
	printf("%-6s %-4s %6zu  median %9s  p90 %9s  p99 %9s  max %9s  idle %5lu  watchdog %4lu"
	       "  other %lu  sync %lu  idle CPU %s/%.1fs\n", cond, r->mode, r->n,
	       mb_fmt_ns(mb_pct_sorted(r->v, r->n, 50) * 1e3, a, sizeof a),
	       mb_fmt_ns(mb_pct_sorted(r->v, r->n, 90) * 1e3, b, sizeof b),
	       mb_fmt_ns(mb_pct_sorted(r->v, r->n, 99) * 1e3, c, sizeof c),
	       mb_fmt_ns(r->v[r->n - 1] * 1e3, d, sizeof d), r->idle, r->watchdog, r->other,
	       r->sync, mb_fmt_ns(mb_pct_sorted(r->idle_cpu_ms, (size_t)runs, 50) * 1e6, e, sizeof e),
	       IDLE_LOOK_US / 1e6);
}

static int library(const struct mb_sysinfo *si, int per_round, int rounds, int per_cpu)
{
	static struct lib_result res[NCOND][NWAY];
	pid_t hogs[256];
	int nhog = si->ncpu * per_cpu < 256 ? si->ncpu * per_cpu : 256;
	for (int c = 0; c < NCOND; c++)
		for (int w = 0; w < NWAY; w++)
			if (!(res[c][w].v = malloc(sizeof(double) * (size_t)(rounds * per_round))))
				mb_die("malloc");
	printf("# runner:               %s; %d CPU hog(s) per CPU (in the process's cgroup); %d "
	       "rounds of %d blocked reads per condition and way, %d us apart\n", pinned ?
	       "pinned to CPU 0" : "unpinned", per_cpu, rounds, per_round, gap_us);
	for (int h = 0; h < nhog; h++)
		hogs[h] = start_hog(h % si->ncpu);
	hogs_signal(hogs, nhog, SIGSTOP);
	for (int r = 0; r < rounds; r++)
		for (int c = 0; c < NCOND; c++) {
			hogs_signal(hogs, nhog, c == HOGS ? SIGCONT : SIGSTOP);
			usleep(100000);
			for (int i = 0; i < NWAY; i++) {
				int w = (r + i) % NWAY; /* which way goes first alternates */
				lib_run(w, per_round, &res[c][w]);
			}
		}
	for (int h = 0; h < nhog; h++) {
		kill(hogs[h], SIGKILL);
		waitpid(hogs[h], NULL, 0);
	}
	printf("# with the cgroup:      %s: %s\n", res[QUIET][WAY_ON].mode, res[QUIET][WAY_ON].why);
	printf("# without:              %s\n", res[QUIET][WAY_OFF].why);
	printf("%-6s %-4s %6s  notice: blocked read() to EINPROGRESS; who caught the calls\n", "cond",
	       "cg", "n");
	for (int c = 0; c < NCOND; c++)
		for (int w = 0; w < NWAY; w++)
			lib_report(cond_name[c], &res[c][w]);
	return 0;
}

int main(int argc, char **argv)
{
	int per_round = 0, rounds = 5, per_cpu = 1, opt, mech = 0, pin = -1;
	static const struct option lo[] = { { "samples", 1, 0, 's' }, { "rounds", 1, 0, 'r' },
					    { "unpinned", 0, 0, 'u' }, { "pinned", 0, 0, 'p' },
					    { "quick", 0, 0, 'q' }, { "hogs", 1, 0, 'h' },
					    { "placements", 0, 0, 'm' }, { "gap-us", 1, 0, 'g' },
					    { 0 } };
	while ((opt = getopt_long(argc, argv, "s:r:upqh:mg:", lo, NULL)) != -1)
		if (opt == 's')
			per_round = atoi(optarg);
		else if (opt == 'r')
			rounds = atoi(optarg);
		else if (opt == 'u')
			pin = 0;
		else if (opt == 'p')
			pin = 1;
		else if (opt == 'h')
			per_cpu = atoi(optarg);
		else if (opt == 'q')
			per_round = 30, rounds = 3;
		else if (opt == 'm')
			mech = 1;
		else if (opt == 'g')
			gap_us = atoi(optarg);
		else
			mb_fail("usage: cgnotice [--placements] [--samples N per round] [--rounds R] "
				"[--hogs per CPU] [--pinned | --unpinned] [--gap-us US] [--quick]");
	if (per_round <= 0)
		per_round = mech ? 100 : 200;
	pinned = pin >= 0 ? pin : mech; /* the placements pin by default, the library does not */
	if (rounds <= 0 || per_cpu < 0 || gap_us < 0)
		mb_fail("--rounds, --hogs and --gap-us: positive numbers");
	struct mb_sysinfo si;
	mb_sysinfo_get(&si);
	mb_sysinfo_print(stdout, &si);
	fflush(stdout);
	return mech ? placements(&si, per_round, rounds, per_cpu) : library(&si, per_round, rounds,
									   per_cpu);
}
