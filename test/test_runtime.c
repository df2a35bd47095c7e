/* test_runtime.c - the M:N user-thread runtime (runtime/rt.h): threads, blocking system calls,
 * synchronisation, stacks, scheduling, under every block detector that works here.
 *
 * Code that runs in user threads never uses cr_assert (it would longjmp out of a user
 * thread's stack): it records what it saw in variables that the test body checks afterwards. */
#include <sys/mman.h>
#include <sys/wait.h>
#include <linux/futex.h>
#include <signal.h>
#include <spawn.h>
#include "test-util.h"
#include "rt.h"


/* a small generator of our own: under ThreadSanitizer test-util.h takes rand_r() */
static unsigned next_rand(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 16;
}

static bool sanitized(void)
{
	const char *e = getenv("LAIO_SANITIZED");
	return e && *e && strcmp(e, "0") != 0;
}

static void start(int nvp)
{
	int e = rt_init(nvp);
	cr_assert_eq(e, 0, "rt_init(%d): %s", nvp, strerror(e));
}

static void stop(void)
{
	cr_assert_eq(rt_shutdown(), 0);
}

static long sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	return rt_syscall(SYS_nanosleep, &ts, NULL);
}

/* ---- threads: spawn, join, exit, detach ---- */

static void *twice(void *arg)
{
	return (void *)((long)arg * 2);
}

static void leave_from_deep_inside(int depth, long v)
{
	if (depth < 0)
		return;
	if (depth == 0)
		rt_exit((void *)v);
	leave_from_deep_inside(depth - 1, v);
}

static void *exits_early(void *arg)
{
	leave_from_deep_inside(5, (long)arg);
	return NULL; /* not reached */
}

Test(threads, return_value_and_exit)
{
	start(2);
	rt_thread_t *t[16];
	for (long i = 0; i < 16; i++) {
		t[i] = rt_spawn(i % 2 ? twice : exits_early, (void *)i);
		cr_assert_not_null(t[i], "rt_spawn: %s", strerror(errno));
	}
	for (long i = 0; i < 16; i++) {
		void *r = NULL;
		cr_assert_eq(rt_join(t[i], &r), 0);
		cr_expect_eq((long)r, i % 2 ? i * 2 : i, "thread %ld returned %ld", i, (long)r);
	}
	cr_expect_null(rt_self(), "outside user threads there is no current thread");
	cr_expect_eq(rt_vp_id(), -1);
	stop();
}

struct ident {
	rt_thread_t *self;
	uint64_t id;
	int vp;
};

static void *who_am_i(void *arg)
{
	struct ident *w = arg;
	w->self = rt_self();
	w->id = rt_thread_id(w->self);
	w->vp = rt_vp_id();
	return NULL;
}

Test(threads, self_id_and_vp)
{
	start(2);
	struct ident w[4] = { 0 };
	rt_thread_t *t[4];
	for (int i = 0; i < 4; i++) {
		struct rt_attr a = RT_ATTR_INIT;
		a.vp = i % 2;
		t[i] = rt_spawn_attr(&a, who_am_i, &w[i]);
		cr_assert_not_null(t[i]);
	}
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(rt_join(t[i], NULL), 0);
		cr_expect_eq(w[i].self, t[i], "rt_self() is the handle rt_spawn() returned");
		cr_expect_eq(w[i].id, rt_thread_id(t[i]));
		cr_expect_eq(w[i].vp, i % 2, "a pinned thread runs on its VP");
	}
	for (int i = 1; i < 4; i++)
		cr_expect_neq(w[i].id, w[0].id, "ids are unique");
	stop();
}

/* A user thread that joins others parks itself; the VP runs the children meanwhile. */
static void *parent(void *arg)
{
	long n = (long)arg, sum = 0;
	rt_thread_t *kids[32];
	for (long i = 0; i < n; i++)
		kids[i] = rt_spawn(twice, (void *)i);
	for (long i = 0; i < n; i++) {
		void *r;
		if (rt_join(kids[i], &r) != 0)
			return (void *)-1L;
		sum += (long)r;
	}
	return (void *)sum;
}

Test(threads, join_from_a_user_thread)
{
	start(1); /* one VP: the children can only run while the parent is parked */
	void *r;
	rt_thread_t *t = rt_spawn(parent, (void *)32L);
	cr_assert_not_null(t);
	cr_assert_eq(rt_join(t, &r), 0);
	cr_expect_eq((long)r, 2 * (31 * 32 / 2));
	stop();
}

static long detached_done;

static void *detached_body(void *arg)
{
	(void)arg;
	sleep_ms(5);
	rt_yield();
	__atomic_fetch_add(&detached_done, 1, __ATOMIC_RELAXED);
	return NULL;
}

Test(threads, detach_and_errors)
{
	start(2);
	for (int i = 0; i < 20; i++) {
		rt_thread_t *t = rt_spawn(detached_body, NULL);
		cr_assert_not_null(t);
		cr_expect_eq(rt_detach(t), 0);
	}
	rt_thread_t *t = rt_spawn(twice, (void *)1L);
	cr_assert_eq(rt_join(t, NULL), 0);
	cr_expect_eq(rt_spawn(NULL, NULL), NULL, "no function");
	cr_expect_eq(errno, EINVAL);
	struct rt_attr bad = { 0, 7 };
	cr_expect_eq(rt_spawn_attr(&bad, twice, NULL), NULL, "no VP 7");
	cr_expect_eq(rt_init(2), EBUSY, "already running");
	stop(); /* waits for the detached threads */
	cr_expect_eq(detached_done, 20, "rt_shutdown() waited for every thread");
	cr_expect_eq(rt_spawn(twice, NULL), NULL, "not running");
	cr_expect_eq(rt_shutdown(), EINVAL);
}

static void *try_shutdown(void *arg)
{
	(void)arg;
	return (void *)(long)rt_shutdown();
}

Test(threads, shutdown_and_init_again)
{
	for (int round = 0; round < 3; round++) {
		start(2);
		void *r;
		rt_thread_t *t = rt_spawn(try_shutdown, NULL);
		cr_assert_eq(rt_join(t, &r), 0);
		cr_expect_eq((long)r, EDEADLK, "rt_shutdown() from a user thread");
		t = rt_spawn(exits_early, (void *)7L);
		cr_assert_eq(rt_join(t, &r), 0);
		cr_expect_eq((long)r, 7);
		stop();
	}
}

/* ---- scheduling ---- */

static char order[64];
static int norder;

static void *take_turns(void *arg)
{
	for (int i = 0; i < 4; i++) {
		order[__atomic_fetch_add(&norder, 1, __ATOMIC_RELAXED)] = (char)(long)arg;
		rt_yield();
	}
	return NULL;
}

/* On one VP, spawned from a user thread: all three are queued before any of them runs. */
static void *spawn_three(void *arg)
{
	(void)arg;
	rt_thread_t *t[3];
	for (long i = 0; i < 3; i++)
		t[i] = rt_spawn(take_turns, (void *)('a' + i));
	for (int i = 0; i < 3; i++)
		rt_join(t[i], NULL);
	return NULL;
}

Test(sched, yield_is_round_robin)
{
	start(1);
	rt_join(rt_spawn(spawn_three, NULL), NULL);
	order[norder] = 0;
	cr_expect_str_eq(order, "abcabcabcabc");
	stop();
}

/* MXCSR (SSE rounding) and the x87 control word are part of a thread's context. Rounding
 * control is bits 13-14 of the MXCSR and bits 10-11 of the x87 control word: 2 up, 3 toward
 * zero. */
static void set_rounding(unsigned rc)
{
	unsigned mxcsr;
	unsigned short cw;
	__asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
	mxcsr = (mxcsr & ~(3u << 13)) | rc << 13;
	__asm__ volatile("ldmxcsr %0" : : "m"(mxcsr));
	__asm__ volatile("fnstcw %0" : "=m"(cw));
	cw = (unsigned short)((cw & ~(3u << 10)) | rc << 10);
	__asm__ volatile("fldcw %0" : : "m"(cw));
}

static void *rounding(void *arg)
{
	unsigned rc = (unsigned)(long)arg;
	set_rounding(rc);
	for (int i = 0; i < 50; i++) {
		rt_yield();
		/* 1/3 rounds differently up and toward zero, in SSE and in x87 */
		volatile double one = 1.0, three = 3.0;
		volatile long double lone = 1.0L, lthree = 3.0L;
		double q = one / three;
		long double lq = lone / lthree;
		double want = rc == 2 ? 0x1.5555555555556p-2 : 0x1.5555555555555p-2;
		if (q != want)
			return (void *)1L;
		if ((rc == 2) != (lq * lthree > lone))
			return (void *)2L;
	}
	set_rounding(0);
	return NULL;
}

Test(sched, fp_control_state_is_per_thread)
{
	start(1);
	rt_thread_t *a = rt_spawn(rounding, (void *)2L);
	rt_thread_t *b = rt_spawn(rounding, (void *)3L);
	void *ra, *rb;
	rt_join(a, &ra);
	rt_join(b, &rb);
	cr_expect_null(ra, "upward thread: %ld", (long)ra);
	cr_expect_null(rb, "toward-zero thread: %ld", (long)rb);
	stop();
}

/* Unpinned threads that start on one VP are stolen by the idle one. */
static uint32_t vps_seen[8];
static int spin_stop;

static void *spin_and_yield(void *arg)
{
	long i = (long)arg;
	while (!__atomic_load_n(&spin_stop, __ATOMIC_RELAXED)) {
		__atomic_fetch_or(&vps_seen[i], 1u << rt_vp_id(), __ATOMIC_RELAXED);
		for (volatile int k = 0; k < 2000; k++)
			;
		rt_yield();
	}
	return NULL;
}

static void *spawn_here(void *arg)
{
	rt_thread_t **t = arg;
	for (long i = 0; i < 4; i++)
		t[i] = rt_spawn(spin_and_yield, (void *)i); /* all on this VP */
	return NULL;
}

Test(sched, idle_vp_steals)
{
	start(2);
	rt_thread_t *t[4];
	struct rt_attr a = { 0, 0 };
	rt_join(rt_spawn_attr(&a, spawn_here, t), NULL);
	double end = now_s() + 0.3;
	while (now_s() < end)
		usleep(10000);
	__atomic_store_n(&spin_stop, 1, __ATOMIC_RELAXED);
	uint32_t all = 0;
	for (int i = 0; i < 4; i++) {
		rt_join(t[i], NULL);
		all |= vps_seen[i];
	}
	struct rt_stats st;
	rt_stats(&st);
	cr_expect_eq(all, 3u, "threads ran on both VPs (seen mask %#x)", all);
	cr_expect_gt(st.steals, 0);
	stop();
}

/* CPU-bound threads (yielding now and then) and threads that block: nobody starves. */
static int mixed_stop;
static long cpu_progress[4], io_progress[8];

static void *cpu_bound(void *arg)
{
	long i = (long)arg;
	while (!__atomic_load_n(&mixed_stop, __ATOMIC_RELAXED)) {
		for (volatile int k = 0; k < 20000; k++)
			;
		__atomic_fetch_add(&cpu_progress[i], 1, __ATOMIC_RELAXED);
		rt_yield();
	}
	return NULL;
}

static void *io_bound(void *arg)
{
	long i = (long)arg;
	while (!__atomic_load_n(&mixed_stop, __ATOMIC_RELAXED)) {
		if (sleep_ms(2) != 0)
			return (void *)1L;
		__atomic_fetch_add(&io_progress[i], 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

Test(sched, mixed_load_nobody_starves)
{
	start(2);
	rt_thread_t *c[4], *b[8];
	for (long i = 0; i < 4; i++)
		c[i] = rt_spawn(cpu_bound, (void *)i);
	for (long i = 0; i < 8; i++)
		b[i] = rt_spawn(io_bound, (void *)i);
	double t0 = now_s();
	while (now_s() < t0 + 1.0)
		usleep(20000);
	__atomic_store_n(&mixed_stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < 4; i++)
		rt_join(c[i], NULL);
	for (int i = 0; i < 8; i++) {
		void *r;
		rt_join(b[i], &r);
		cr_expect_null(r, "sleeper %d: nanosleep failed", i);
	}
	double secs = now_s() - t0;
	/* a thread that starves makes no progress at all; 2 ms sleeps for 1 s are up to ~500
	   each: ask for a few, so that a machine busy with other work does not fail the test */
	for (int i = 0; i < 4; i++)
		cr_expect_geq(cpu_progress[i], 3, "CPU-bound thread %d: %ld rounds", i, cpu_progress[i]);
	for (int i = 0; i < 8; i++)
		cr_expect_geq(io_progress[i], 3, "blocking thread %d: %ld sleeps", i, io_progress[i]);
	struct rt_stats st;
	rt_stats(&st);
	cr_log_info("mixed load, %.2f s: CPU rounds %ld %ld %ld %ld; sleeps %ld %ld %ld %ld ...; "
		    "%lu completions (%lu seen at scheduling points)", secs, cpu_progress[0],
		    cpu_progress[1], cpu_progress[2], cpu_progress[3], io_progress[0], io_progress[1],
		    io_progress[2], io_progress[3], st.completions, st.polled);
	cr_expect_gt(st.polled, 0, "busy VPs notice completions without an upcall");
	stop();
}

/* ---- rt_syscall ---- */

struct sysres {
	long r;
	int e;
};

static void *nonblocking_calls(void *arg)
{
	struct sysres *s = arg;
	errno = 0;
	s[0].r = rt_syscall(SYS_getpid);
	s[0].e = errno;
	s[1].r = rt_syscall(SYS_close, -1);
	s[1].e = errno;
	s[2].r = rt_syscall(999);
	s[2].e = errno;
	s[3].r = rt_syscall(SYS_read, 12345, NULL, 1);
	s[3].e = errno;
	return NULL;
}

Test(syscall, same_result_as_syscall)
{
	start(2);
	struct sysres s[4];
	rt_join(rt_spawn(nonblocking_calls, s), NULL);
	cr_expect_eq(s[0].r, getpid());
	cr_expect(s[1].r == -1 && s[1].e == EBADF, "close(-1): %ld %d", s[1].r, s[1].e);
	cr_expect(s[2].r == -1 && s[2].e == ENOSYS, "999: %ld %d", s[2].r, s[2].e);
	cr_expect(s[3].r == -1 && s[3].e == EBADF, "read(bad): %ld %d", s[3].r, s[3].e);
	cr_expect_eq(rt_syscall(SYS_getppid), getppid(), "outside user threads: syscall()");
	stop();
}

/* A call that blocks returns its own result, value or error, in its own thread. */
static int pfd[2];
static uint32_t futex_word;

static void *blocked_reader(void *arg)
{
	struct sysres *s = arg;
	char buf[8] = { 0 };
	s->r = rt_syscall(SYS_read, pfd[0], buf, sizeof buf);
	s->e = buf[0] == 'x' && buf[1] == 'y' ? 0 : -1;
	return NULL;
}

/* The calls block for long enough that even a watchdog starved of CPU sees them twice. */
static void *late_writer(void *arg)
{
	(void)arg;
	sleep_ms(200);
	return (void *)rt_syscall(SYS_write, pfd[1], "xy", 2);
}

static void *blocked_until_timeout(void *arg)
{
	struct sysres *s = arg;
	struct timespec ts = { 0, 200 * 1000000L };
	errno = 0;
	s->r = rt_syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, 0, &ts, NULL, 0);
	s->e = errno;
	return NULL;
}

static void blocking_results(int detector)
{
	struct rt_config c = { .nvp = 2, .detector = detector };
	int e = rt_init_config(&c);
	if (e == ENOTSUP)
		cr_skip_test("this detector cannot work here (perf permission?)");
	cr_assert_eq(e, 0, "rt_init_config: %s", strerror(e));
	cr_assert_eq(pipe(pfd), 0);
	struct sysres rd = { 0 }, to = { 0 };
	rt_thread_t *r = rt_spawn(blocked_reader, &rd);
	rt_thread_t *f = rt_spawn(blocked_until_timeout, &to);
	rt_thread_t *w = rt_spawn(late_writer, NULL);
	void *wr;
	rt_join(r, NULL);
	rt_join(f, NULL);
	rt_join(w, &wr);
	cr_expect_eq((long)wr, 2);
	cr_expect(rd.r == 2 && rd.e == 0, "read: %ld (data %s)", rd.r, rd.e ? "wrong" : "ok");
	cr_expect(to.r == -1 && to.e == ETIMEDOUT, "futex wait: %ld errno %d", to.r, to.e);
	struct rt_stats st;
	rt_stats(&st);
	cr_expect_geq(st.upcalls_blocked, 2, "the calls blocked (%lu BLOCKED upcalls)",
		      st.upcalls_blocked);
	close(pfd[0]);
	close(pfd[1]);
	stop();
}

Test(syscall, blocked_call_returns_its_result)
{
	blocking_results(RT_DETECT_AUTO);
}

Test(syscall, blocked_call_eager)
{
	blocking_results(RT_DETECT_EAGER);
}

Test(syscall, blocked_call_watchdog)
{
	blocking_results(RT_DETECT_WATCHDOG);
}

Test(syscall, blocked_call_upcall)
{
	blocking_results(RT_DETECT_UPCALL);
}

/* The headline: 10,000 threads each sleep 10-50 ms in a blocking call, on 2 VPs; the run must
 * take a small multiple of the longest sleep. Under the sanitizers 500, and the evidence of
 * concurrency is the BLOCKED upcalls, not the time: ThreadSanitizer cannot keep 10,000 fibers
 * (one per live user thread), and a fiber costs it milliseconds to make. */
static long slept;

static void *sleeper(void *arg)
{
	if (sleep_ms((long)arg) == 0)
		__atomic_fetch_add(&slept, 1, __ATOMIC_RELAXED);
	return NULL;
}

Test(syscall, ten_thousand_sleepers, .timeout = 300)
{
	const int n = sanitized() ? 500 : 10000;
	start(2);
	rt_thread_t **t = calloc(n, sizeof(*t));
	long longest = 0, sum = 0;
	unsigned seed = 1;
	double t0 = now_s();
	for (int i = 0; i < n; i++) {
		long ms = 10 + next_rand(&seed) % 41;
		longest = ms > longest ? ms : longest;
		sum += ms;
		t[i] = rt_spawn(sleeper, (void *)ms);
		cr_assert_not_null(t[i], "rt_spawn %d: %s", i, strerror(errno));
	}
	for (int i = 0; i < n; i++)
		cr_assert_eq(rt_join(t[i], NULL), 0);
	double wall = now_s() - t0;
	struct rt_stats st;
	rt_stats(&st);
	cr_expect_eq(slept, n, "every sleep completed");
	/* Serially the sleeps take sum/2 on two VPs (~150 s); concurrently a little more than the
	   longest plus ~100 us of shim work per blocked call (detection, claim, upcall): 20-25x
	   the longest sleep on a quiet machine. The bound, 200x, is 15x below serial and leaves
	   room for a machine shared with other work. */
	double bound = 200 * longest / 1000.0;
	printf("%d sleepers on 2 VPs: %.3f s wall, longest sleep %ld ms (%.1fx), sum of "
	       "sleeps %.0f s; %lu BLOCKED upcalls, %lu completions (%lu polled), %lu steals\n",
	       n, wall, longest, wall * 1000 / longest, sum / 1000.0, st.upcalls_blocked,
	       st.completions, st.polled, st.steals);
	if (sanitized())
		cr_expect_geq(st.upcalls_blocked, (unsigned long)n / 2,
			      "the VPs went on while threads slept: %lu BLOCKED upcalls of %d",
			      st.upcalls_blocked, n);
	else
		cr_expect_lt(wall, bound, "%.3f s: not below %.1f s (longest sleep %ld ms, sum %ld ms)",
			     wall, bound, longest, sum);
	free(t);
	stop();
}

/* ---- synchronisation ---- */

static rt_mutex_t pp_mutex = RT_MUTEX_INIT;
static rt_cond_t pp_cond = RT_COND_INIT;
static int pp_turn, pp_rounds;
static int pp_wrong_vp;

static void *ping_pong(void *arg)
{
	int me = (int)(long)arg;
	for (int i = 0; i < pp_rounds; i++) {
		rt_mutex_lock(&pp_mutex);
		while (pp_turn != me)
			rt_cond_wait(&pp_cond, &pp_mutex);
		if (rt_vp_id() != me)
			pp_wrong_vp++;
		pp_turn = !me;
		rt_cond_signal(&pp_cond);
		rt_mutex_unlock(&pp_mutex);
	}
	return NULL;
}

Test(sync, ping_pong_across_vps)
{
	start(2);
	pp_rounds = sanitized() ? 500 : 5000;
	rt_thread_t *t[2];
	double t0 = now_s();
	for (long i = 0; i < 2; i++) {
		struct rt_attr a = { 0, (int)i };
		t[i] = rt_spawn_attr(&a, ping_pong, (void *)i);
	}
	rt_join(t[0], NULL);
	rt_join(t[1], NULL);
	double secs = now_s() - t0;
	cr_expect_eq(pp_turn, 0, "an even number of handoffs");
	cr_expect_eq(pp_wrong_vp, 0, "each thread stayed on its VP");
	printf("ping-pong between VP0 and VP1 through rt_mutex/rt_cond: %d round trips, %.1f us "
	       "each\n", pp_rounds, secs * 1e6 / pp_rounds);
	stop();
}

static rt_mutex_t cnt_mutex = RT_MUTEX_INIT;
static long counter;

static void *add_under_mutex(void *arg)
{
	(void)arg;
	for (int i = 0; i < 500; i++) {
		rt_mutex_lock(&cnt_mutex);
		long v = counter;
		if (i % 7 == 0)
			rt_yield(); /* holding the mutex: others park on it */
		counter = v + 1;
		rt_mutex_unlock(&cnt_mutex);
	}
	return NULL;
}

Test(sync, mutex_excludes)
{
	start(2);
	rt_thread_t *t[16];
	for (int i = 0; i < 16; i++)
		t[i] = rt_spawn(add_under_mutex, NULL);
	for (int i = 0; i < 16; i++)
		rt_join(t[i], NULL);
	cr_expect_eq(counter, 16 * 500);
	stop();
}

static rt_mutex_t bc_mutex = RT_MUTEX_INIT;
static rt_cond_t bc_cond = RT_COND_INIT;
static int bc_go, bc_waiting, bc_woken;

static void *wait_for_go(void *arg)
{
	(void)arg;
	rt_mutex_lock(&bc_mutex);
	bc_waiting++;
	while (!bc_go)
		rt_cond_wait(&bc_cond, &bc_mutex);
	bc_woken++;
	rt_mutex_unlock(&bc_mutex);
	return NULL;
}

static void *broadcaster(void *arg)
{
	int n = (int)(long)arg;
	for (;;) {
		rt_mutex_lock(&bc_mutex);
		int w = bc_waiting;
		rt_mutex_unlock(&bc_mutex);
		if (w == n)
			break;
		rt_yield();
	}
	rt_mutex_lock(&bc_mutex);
	bc_go = 1;
	rt_cond_broadcast(&bc_cond);
	rt_mutex_unlock(&bc_mutex);
	return NULL;
}

Test(sync, cond_broadcast_wakes_all)
{
	start(2);
	rt_thread_t *t[10];
	for (int i = 0; i < 10; i++)
		t[i] = rt_spawn(wait_for_go, NULL);
	rt_thread_t *b = rt_spawn(broadcaster, (void *)10L);
	for (int i = 0; i < 10; i++)
		rt_join(t[i], NULL);
	rt_join(b, NULL);
	cr_expect_eq(bc_woken, 10);
	stop();
}

static void *misuse(void *arg)
{
	int *r = arg;
	rt_mutex_t m;
	rt_mutex_init(&m);
	r[0] = rt_mutex_trylock(&m);
	r[1] = rt_mutex_trylock(&m);
	r[2] = rt_mutex_lock(&m);
	r[3] = rt_mutex_unlock(&m);
	r[4] = rt_mutex_unlock(&m);
	rt_cond_t c = RT_COND_INIT;
	r[5] = rt_cond_wait(&c, &m);
	return NULL;
}

Test(sync, errors)
{
	start(1);
	int r[6];
	rt_join(rt_spawn(misuse, r), NULL);
	cr_expect_eq(r[0], 0);
	cr_expect_eq(r[1], EBUSY);
	cr_expect_eq(r[2], EDEADLK);
	cr_expect_eq(r[3], 0);
	cr_expect_eq(r[4], EPERM, "unlock of an unlocked mutex");
	cr_expect_eq(r[5], EPERM, "wait without the mutex");
	rt_mutex_t m = RT_MUTEX_INIT;
	cr_expect_eq(rt_mutex_lock(&m), EPERM, "outside user threads");
	stop();
}

/* ---- stacks ---- */

static void *use_stack(void *arg)
{
	size_t n = (size_t)arg;
	volatile char big[n];
	for (size_t i = 0; i < n; i += 4096)
		big[i] = (char)i;
	return (void *)(long)big[0];
}

Test(stack, configured_size)
{
	struct rt_config c = { .nvp = 1, .stack_size = 2 << 20 };
	cr_assert_eq(rt_init_config(&c), 0);
	cr_expect_eq(rt_join(rt_spawn(use_stack, (void *)(size_t)(1 << 20)), NULL), 0);
	struct rt_attr a = { 4 << 20, -1 };
	cr_expect_eq(rt_join(rt_spawn_attr(&a, use_stack, (void *)(size_t)(3 << 20)), NULL), 0);
	stop();
}

static volatile int recursion_limit = 1 << 30;

static int recurse(int depth)
{
	volatile char pad[512];
	pad[0] = (char)depth;
	if (depth > recursion_limit)
		return 0;
	return recurse(depth + 1) + pad[0];
}

#define OVERFLOW_STACK (64 * 1024)
static uintptr_t overflow_top;         /* near the top of the overflowing thread's stack */
static char altstack[64 * 1024];

static void set_default_segv(void)
{
	/* the system call itself: the sanitizers intercept signal() and sigaction() */
	struct { void *handler; unsigned long flags; void *restorer; uint64_t mask; } dfl =
		{ SIG_DFL, 0, NULL, 0 };
	syscall(SYS_rt_sigaction, SIGSEGV, &dfl, NULL, sizeof dfl.mask);
}

/* The first fault must come as the recursion crosses the bottom of the usable stack, into the
 * guard page; without a guard it would come a page lower, below the mapping. Then the default
 * action: returning re-executes the faulting access, and the process dies of SIGSEGV. */
static void on_segv(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	uintptr_t depth = overflow_top - (uintptr_t)si->si_addr;
	if (depth < OVERFLOW_STACK - 2048 || depth > OVERFLOW_STACK + 2048)
		_exit(4); /* a fault, but not on the guard page */
	set_default_segv();
}

static void *overflow(void *arg)
{
	int here;
	(void)arg;
	overflow_top = (uintptr_t)&here;
	/* the handler needs a stack of its own; it is per kernel thread, this VP's */
	stack_t ss = { .ss_sp = altstack, .ss_size = sizeof altstack };
	struct sigaction sa = { .sa_sigaction = on_segv, .sa_flags = SA_SIGINFO | SA_ONSTACK };
	if (sigaltstack(&ss, NULL) != 0 || sigaction(SIGSEGV, &sa, NULL) != 0)
		_exit(5);
	return (void *)(long)recurse(0);
}

/* This program started as the child of the test below: overflow a user thread's stack. It
 * runs before Criterion's main and never returns. A fresh process rather than fork(): the
 * test process has threads, and ThreadSanitizer cannot start threads after such a fork. */
__attribute__((constructor)) static void overflow_child(void)
{
	if (!getenv("RT_TEST_OVERFLOW_CHILD"))
		return;
	struct rt_config c = { .nvp = 1, .stack_size = OVERFLOW_STACK };
	if (rt_init_config(&c) != 0)
		_exit(3);
	rt_join(rt_spawn(overflow, NULL), NULL);
	_exit(0); /* not reached: the recursion cannot end */
}

Test(stack, overflow_hits_the_guard_page)
{
	extern char **environ;
	char *argv[] = { "test_runtime", NULL };
	pid_t pid;
	fflush(NULL);
	setenv("RT_TEST_OVERFLOW_CHILD", "1", 1);
	int e = posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, environ);
	unsetenv("RT_TEST_OVERFLOW_CHILD");
	cr_assert_eq(e, 0, "posix_spawn: %s", strerror(e));
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV,
		  "child: %s %d (exit 4: the fault was not on the guard page)",
		  WIFSIGNALED(status) ? "signal" : "exit",
		  WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
}

/* ---- the teaching example ---- */

Test(example, rt_upcalls_shows_the_upcalls)
{
	const char *b = getenv("LAIO_BUILD");
	char cmd[512], out[65536];
	snprintf(cmd, sizeof cmd, "timeout 60 %s/docs/examples/rt_upcalls 2>&1", b ? b : "build");
	FILE *f = popen(cmd, "r");
	cr_assert_not_null(f);
	size_t n = fread(out, 1, sizeof out - 1, f);
	out[n] = 0;
	int st = pclose(f);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "rt_upcalls failed:\n%s", out);
	cr_expect(strstr(out, "upcall BLOCKED: thread 2"), "a sleeper's BLOCKED upcall:\n%s", out);
	cr_expect(strstr(out, "seen at a scheduling point"), "a completion found by polling:\n%s",
		  out);
	cr_expect(strstr(out, "upcall UNBLOCKED: blocked calls finished"),
		  "the last sleeper completes by an UNBLOCKED upcall:\n%s", out);
	cr_expect(strstr(out, "3 BLOCKED upcalls"), "every sleep blocked:\n%s", out);
}
