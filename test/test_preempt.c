/* test_preempt.c - optional time slices of the runtime (rt_config.quantum_us, RT_QUANTUM_US):
 * CPU-bound user threads share a VP without yielding; without a quantum nothing changes; locks,
 * conditions and blocking calls keep working when threads are stopped anywhere; a preempted
 * thread gets back its registers, FP state and errno.
 *
 * Code in user threads records what it saw (no cr_assert: it would longjmp off a user stack).
 * No test asserts a duration: waits have generous limits that fail the test rather than hang. */
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include "test-util.h"
#include "rt.h"

static bool sanitized(void)
{
	const char *e = getenv("LAIO_SANITIZED");
	return e && *e && strcmp(e, "0") != 0;
}

static void start_q(int nvp, unsigned quantum_us)
{
	unsetenv("RT_QUANTUM_US");
	struct rt_config c = { .nvp = nvp, .quantum_us = quantum_us };
	int e = rt_init_config(&c);
	cr_assert_eq(e, 0, "rt_init_config(nvp %d, quantum %u us): %s", nvp, quantum_us, strerror(e));
}

static void stop(void)
{
	cr_assert_eq(rt_shutdown(), 0);
}

/* Wait (outside the runtime) until *word reaches `want`, at most `secs`: false on time-out. */
static bool wait_for(const long *word, long want, double secs)
{
	double end = now_s() + secs * (double)slow_factor();
	while (__atomic_load_n(word, __ATOMIC_ACQUIRE) < want) {
		if (now_s() > end)
			return false;
		usleep(1000);
	}
	return true;
}

/* ---- two CPU-bound threads on one VP ---- */

static int flag[2];
static int saw_other[2];
static double spin_limit_s;

/* Set my flag, then compute until the other thread's flag is up (or the limit). Neither
 * yields: under cooperative scheduling the second cannot start before the first gives up. */
static void *spinner(void *arg)
{
	int me = (int)(long)arg;
	__atomic_store_n(&flag[me], 1, __ATOMIC_RELEASE);
	double end = now_s() + spin_limit_s;
	volatile unsigned long x = 1;
	for (;;) {
		for (int i = 0; i < 2000; i++)
			x = x * 6364136223846793005ul + 1442695040888963407ul;
		if (__atomic_load_n(&flag[!me], __ATOMIC_ACQUIRE)) {
			saw_other[me] = 1;
			break;
		}
		if (now_s() > end)
			break;
	}
	return NULL;
}

static void two_spinners(void)
{
	flag[0] = flag[1] = saw_other[0] = saw_other[1] = 0;
	rt_thread_t *a = rt_spawn(spinner, (void *)0L);
	rt_thread_t *b = rt_spawn(spinner, (void *)1L);
	cr_assert(a && b);
	cr_assert_eq(rt_join(a, NULL), 0);
	cr_assert_eq(rt_join(b, NULL), 0);
}

Test(preempt, two_cpu_bound_threads_share_one_vp)
{
	spin_limit_s = 20.0 * (double)slow_factor();
	start_q(1, 1000);
	two_spinners();
	struct rt_stats st;
	rt_stats(&st);
	stop();
	cr_expect(saw_other[0], "thread 1 never saw thread 2 run: no preemption");
	cr_expect(saw_other[1], "thread 2 never saw thread 1");
	cr_expect_geq(st.preemptions, 1);
	cr_expect_geq(st.preempt_signals, 1);
}

Test(preempt, quantum_from_the_environment)
{
	spin_limit_s = 20.0 * (double)slow_factor();
	setenv("RT_QUANTUM_US", "500", 1);
	struct rt_config c = { .nvp = 1 };
	cr_assert_eq(rt_init_config(&c), 0);
	unsetenv("RT_QUANTUM_US");
	two_spinners();
	stop();
	cr_expect(saw_other[0] && saw_other[1], "RT_QUANTUM_US=500: both threads must run");
}

/* Without a quantum the first spinner runs to its limit before the second starts. */
Test(preempt, off_by_default_is_cooperative)
{
	spin_limit_s = 0.3;
	start_q(1, 0);
	two_spinners();
	struct rt_stats st;
	rt_stats(&st);
	stop();
	cr_expect(!saw_other[0], "cooperative: thread 1 cannot see thread 2 before it gives up");
	cr_expect(saw_other[1], "thread 2 runs after thread 1 and sees its flag");
	cr_expect_eq(st.preemptions, 0);
	cr_expect_eq(st.preempt_signals, 0);
}

Test(preempt, bad_quantum)
{
	unsetenv("RT_QUANTUM_US");
	struct rt_config c = { .nvp = 1, .quantum_us = 10 };
	cr_expect_eq(rt_init_config(&c), EINVAL, "a quantum under 50 us");
	c.quantum_us = 0;
	setenv("RT_QUANTUM_US", "1ms", 1);
	cr_expect_eq(rt_init_config(&c), EINVAL, "RT_QUANTUM_US must be a number");
	setenv("RT_QUANTUM_US", "0", 1);
	cr_expect_eq(rt_init_config(&c), 0, "RT_QUANTUM_US=0: cooperative");
	unsetenv("RT_QUANTUM_US");
	stop();
}

/* ---- registers, FP state and errno across preemptions ---- */

#define FP_THREADS 3
static long fp_rounds_done;
static long fp_bad;
static long fp_target;

/* A sum whose exact bits depend on every step: SSE (double) and x87 (long double) accumulators
 * and integer registers live across the whole loop, under the thread's own rounding mode. */
__attribute__((noinline)) static void crunch(int n, double *d, long double *ld, unsigned long *h)
{
	double s = 0;
	long double l = 0;
	unsigned long x = 0x9e3779b97f4a7c15ul;
	for (int i = 1; i <= n; i++) {
		s += 1.0 / (double)i;
		l += 1.0L / ((long double)i * (long double)i);
		x = (x ^ (unsigned long)i) * 0x100000001b3ul;
	}
	*d = s;
	*ld = l;
	*h = x;
}

/* The rounding mode in both units (x87 control word bits 10-11, MXCSR bits 13-14): 0 nearest,
 * 2 upward, 3 toward zero. Set by hand: the suites do not link libm. */
static void set_round(unsigned rc)
{
	unsigned mx;
	unsigned short cw;
	__asm__ volatile("stmxcsr %0" : "=m"(mx));
	__asm__ volatile("fnstcw %0" : "=m"(cw));
	mx = (mx & ~0x6000u) | rc << 13;
	cw = (unsigned short)((cw & ~0x0c00u) | rc << 10);
	__asm__ volatile("ldmxcsr %0" : : "m"(mx));
	__asm__ volatile("fldcw %0" : : "m"(cw));
}

static unsigned get_round(void)
{
	unsigned mx;
	unsigned short cw;
	__asm__ volatile("stmxcsr %0" : "=m"(mx));
	__asm__ volatile("fnstcw %0" : "=m"(cw));
	return ((mx >> 13) & 3) == ((cw >> 10) & 3u) ? (mx >> 13) & 3 : 99;
}

static const unsigned fp_modes[FP_THREADS] = { 0, 3, 2 };
static double ref_d[FP_THREADS];
static long double ref_ld[FP_THREADS];
static unsigned long ref_h[FP_THREADS];
static int fp_n;

static void *fp_worker(void *arg)
{
	int me = (int)(long)arg;
	set_round(fp_modes[me]);
	int my_errno = 1000 + me;
	for (;;) {
		struct rt_stats st;
		rt_stats(&st);
		if ((long)st.preemptions >= fp_target || __atomic_load_n(&fp_rounds_done,
									__ATOMIC_RELAXED) > 20000)
			break;
		errno = my_errno;
		double d;
		long double ld;
		unsigned long h;
		crunch(fp_n, &d, &ld, &h);
		int e = errno;
		if (d != ref_d[me] || ld != ref_ld[me] || h != ref_h[me] || e != my_errno ||
		    get_round() != fp_modes[me])
			__atomic_fetch_add(&fp_bad, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&fp_rounds_done, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

Test(preempt, registers_fp_state_and_errno_survive)
{
	fp_n = sanitized() ? 50000 : 400000;
	fp_target = sanitized() ? 20 : 100;
	for (int k = 0; k < FP_THREADS; k++) {
		set_round(fp_modes[k]);
		crunch(fp_n, &ref_d[k], &ref_ld[k], &ref_h[k]);
	}
	set_round(0);
	cr_assert(ref_d[0] != ref_d[1] || ref_ld[0] != ref_ld[1], "the rounding modes must differ");
	start_q(1, 200);
	rt_thread_t *t[FP_THREADS];
	for (long k = 0; k < FP_THREADS; k++)
		cr_assert_not_null(t[k] = rt_spawn(fp_worker, (void *)k));
	for (int k = 0; k < FP_THREADS; k++)
		cr_assert_eq(rt_join(t[k], NULL), 0);
	struct rt_stats st;
	rt_stats(&st);
	stop();
	cr_expect_eq(fp_bad, 0, "%ld of %ld rounds got a wrong sum, rounding mode or errno", fp_bad,
		     fp_rounds_done);
#if defined(__SANITIZE_THREAD__)
	/* ThreadSanitizer holds an asynchronous signal until the thread's next intercepted libc
	   call, and crunch() makes none: preemptions are rare there */
	cr_log_info("ThreadSanitizer: preemptions depend on intercepted calls");
#else
	cr_expect_geq(st.preemptions, 1, "no preemption happened in %ld rounds", fp_rounds_done);
#endif
	cr_log_info("%ld rounds, %lu preemptions", fp_rounds_done, st.preemptions);
}

/* ---- locks, conditions and blocking calls under a short quantum on several VPs ---- */

static rt_mutex_t mx = RT_MUTEX_INIT;
static rt_cond_t not_empty = RT_COND_INIT, not_full = RT_COND_INIT;
static long counter, unguarded_check;
#define QCAP 8
static long queue[QCAP];
static int qhead, qlen;
static long produced_sum, consumed_sum, consumed_n;
static long sleeps_bad, workers_done;
static long items_per_producer, incs_per_counter;

static void burn(int n)
{
	volatile unsigned long x = 7;
	for (int i = 0; i < n; i++)
		x = x * 2862933555777941757ul + 3037000493ul;
}

static long sleep_us(long us)
{
	struct timespec ts = { 0, us * 1000 };
	return rt_syscall(SYS_nanosleep, &ts, NULL);
}

/* Holds the mutex while it computes: preempted inside the critical section. */
static void *incrementer(void *arg)
{
	(void)arg;
	for (long i = 0; i < incs_per_counter; i++) {
		rt_mutex_lock(&mx);
		long c = counter;
		unguarded_check++;
		burn(20000);
		counter = c + 1;
		rt_mutex_unlock(&mx);
		if (i % 64 == 0 && sleep_us(200) != 0)
			__atomic_fetch_add(&sleeps_bad, 1, __ATOMIC_RELAXED);
	}
	__atomic_fetch_add(&workers_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void *producer(void *arg)
{
	long base = (long)arg * 1000000;
	for (long i = 1; i <= items_per_producer; i++) {
		rt_mutex_lock(&mx);
		while (qlen == QCAP)
			rt_cond_wait(&not_full, &mx);
		queue[(qhead + qlen++) % QCAP] = base + i;
		produced_sum += base + i;
		rt_cond_signal(&not_empty);
		rt_mutex_unlock(&mx);
		burn(500);
		if (i % 128 == 0 && sleep_us(100) != 0)
			__atomic_fetch_add(&sleeps_bad, 1, __ATOMIC_RELAXED);
	}
	__atomic_fetch_add(&workers_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void *consumer(void *arg)
{
	long want = (long)arg;
	for (long n = 0; n < want; n++) {
		rt_mutex_lock(&mx);
		while (qlen == 0)
			rt_cond_wait(&not_empty, &mx);
		long v = queue[qhead];
		qhead = (qhead + 1) % QCAP;
		qlen--;
		consumed_sum += v;
		consumed_n++;
		rt_cond_broadcast(&not_full);
		rt_mutex_unlock(&mx);
		burn(700);
	}
	__atomic_fetch_add(&workers_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Computes without any runtime call for a long while: the others must still get the VPs. */
static void *hog(void *arg)
{
	long rounds = (long)arg;
	for (long i = 0; i < rounds; i++)
		burn(100000);
	__atomic_fetch_add(&workers_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

Test(preempt, locks_conditions_and_blocking_calls_under_200us, .timeout = 240)
{
	int nvp = 3;
	items_per_producer = sanitized() ? 400 : 3000;
	incs_per_counter = sanitized() ? 200 : 1000;
	start_q(nvp, 200);
	const int ninc = 4, nprod = 3, ncons = 2, nhog = 2;
	long total_items = nprod * items_per_producer;
	rt_thread_t *t[16];
	int n = 0;
	/* pinned round the VPs, so that idle VPs cannot take every thread away from the hogs:
	   each VP has computing threads and threads that lock, wait and sleep */
	struct rt_attr a = RT_ATTR_INIT;
#define PINNED(fn, arg) (a.vp = n % nvp, rt_spawn_attr(&a, fn, arg))
	for (int i = 0; i < nhog; i++)
		t[n] = PINNED(hog, (void *)(sanitized() ? 100L : 2000L)), n++;
	for (int i = 0; i < ninc; i++)
		t[n] = PINNED(incrementer, NULL), n++;
	for (long i = 0; i < nprod; i++)
		t[n] = PINNED(producer, (void *)(i + 1)), n++;
	for (int i = 0; i < ncons; i++)
		t[n] = PINNED(consumer, (void *)(total_items / ncons)), n++;
#undef PINNED
	for (int i = 0; i < n; i++)
		cr_assert_not_null(t[i]);
	/* a deadlock or a lost wakeup shows as workers that never finish */
	bool all = wait_for(&workers_done, n, 120);
	cr_assert(all, "only %ld of %d threads finished: deadlock or lost wakeup",
		  __atomic_load_n(&workers_done, __ATOMIC_ACQUIRE), n);
	for (int i = 0; i < n; i++)
		cr_assert_eq(rt_join(t[i], NULL), 0);
	struct rt_stats st;
	rt_stats(&st);
	stop();
	cr_expect_eq(counter, ninc * incs_per_counter, "the mutex let two holders in");
	cr_expect_eq(unguarded_check, counter);
	cr_expect_eq(consumed_n, total_items);
	cr_expect_eq(consumed_sum, produced_sum);
	cr_expect_eq(sleeps_bad, 0, "a blocking rt_syscall() failed (EINTR from the preemption "
		     "signal?)");
	cr_log_info("%lu preemptions, %lu signals, %lu blocked calls", st.preemptions,
		    st.preempt_signals, st.upcalls_blocked);
}

/* Blocking calls that the kernel never restarts (nanosleep, poll) next to CPU hogs on the same
 * VP: the preemption signal must never show through as EINTR. */
static long calls_bad, calls_done;

static void *sleeper(void *arg)
{
	long n = (long)arg;
	int p[2];
	if (pipe(p) != 0) {
		__atomic_fetch_add(&calls_bad, 1, __ATOMIC_RELAXED);
		return NULL;
	}
	for (long i = 0; i < n; i++) {
		if (sleep_us(300) != 0)
			__atomic_fetch_add(&calls_bad, 1, __ATOMIC_RELAXED);
		struct pollfd pf = { p[0], POLLIN, 0 };
		if (rt_syscall(SYS_poll, &pf, 1L, 1L) != 0)
			__atomic_fetch_add(&calls_bad, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&calls_done, 1, __ATOMIC_RELAXED);
	}
	close(p[0]);
	close(p[1]);
	__atomic_fetch_add(&workers_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static long sleepers_left;

static void *hog_while_sleepers(void *arg)
{
	(void)arg;
	while (__atomic_load_n(&sleepers_left, __ATOMIC_ACQUIRE) > 0)
		burn(100000);
	__atomic_fetch_add(&workers_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void *counted_sleeper(void *arg)
{
	sleeper(arg);
	__atomic_fetch_sub(&sleepers_left, 1, __ATOMIC_RELEASE);
	return NULL;
}

Test(preempt, blocking_calls_never_see_the_signal, .timeout = 240)
{
#if defined(__SANITIZE_THREAD__)
	/* the hogs make no library call, and ThreadSanitizer holds an asynchronous signal until
	   the thread's next one: the preemption that lets the sleepers run never arrives */
	cr_skip_test("ThreadSanitizer delays the preemption signal of a thread that makes no "
		     "library call (the hogs here)");
#endif
	const int nvp = 2;
	start_q(nvp, 200);
	long n = sanitized() ? 200 : 1000;
	rt_thread_t *t[8];
	int k = 0;
	struct rt_attr a = RT_ATTR_INIT;
	sleepers_left = 4;
	for (int i = 0; i < 4; i++, k++) {
		a.vp = k % nvp;
		t[k] = rt_spawn_attr(&a, counted_sleeper, (void *)n);
	}
	for (int i = 0; i < 2; i++, k++) {
		a.vp = k % nvp;
		t[k] = rt_spawn_attr(&a, hog_while_sleepers, NULL);
	}
	bool all = wait_for(&workers_done, k, 120);
	cr_assert(all, "only %ld of %d threads finished", workers_done, k);
	for (int i = 0; i < k; i++)
		cr_assert_eq(rt_join(t[i], NULL), 0);
	struct rt_stats st;
	rt_stats(&st);
	stop();
	cr_expect_eq(calls_bad, 0, "%ld of %ld calls failed", calls_bad, calls_done);
	cr_log_info("%ld calls, %lu preemptions, %lu signals", calls_done, st.preemptions,
		    st.preempt_signals);
}

/* The preemption signal sent to the kernel thread that executes a blocked call (what a stale
 * look of the ticker does) interrupts the call: rt_syscall() must make it again, not return
 * EINTR. Sent here by hand, many times, to the kernel thread of each call. */
static int32_t caller_tid;
static long stray_bad, stray_done;

static void *publishes_and_sleeps(void *arg)
{
	long n = (long)arg;
	for (long i = 0; i < n; i++) {
		__atomic_store_n(&caller_tid, (int32_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		if (rt_syscall(SYS_nanosleep, &ts, NULL) != 0)
			__atomic_fetch_add(&stray_bad, 1, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&stray_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

Test(preempt, signal_on_a_blocked_call_is_absorbed)
{
	start_q(1, 1000);
	rt_thread_t *t = rt_spawn(publishes_and_sleeps, (void *)8L);
	cr_assert_not_null(t);
	double end = now_s() + 60.0 * (double)slow_factor();
	long sent = 0;
	while (!__atomic_load_n(&stray_done, __ATOMIC_ACQUIRE) && now_s() < end) {
		int32_t tid = __atomic_load_n(&caller_tid, __ATOMIC_ACQUIRE);
		if (tid && syscall(SYS_tgkill, getpid(), tid, RT_PREEMPT_SIGNAL) == 0)
			sent++;
		usleep(2000);
	}
	cr_assert(__atomic_load_n(&stray_done, __ATOMIC_ACQUIRE), "the sleeper never finished");
	cr_assert_eq(rt_join(t, NULL), 0);
	stop();
	cr_expect_eq(stray_bad, 0, "%ld of 8 calls failed (EINTR) after %ld signals", stray_bad, sent);
}

/* More VPs than CPUs: each runner gets only a share of its CPU, and slices must still end.
 * The process is confined to one CPU; three VPs each run two CPU-bound threads. */
#define NPAIRS 3
static int pair_flag[NPAIRS][2], pair_saw[NPAIRS][2];

static void *pair_spinner(void *arg)
{
	long id = (long)arg;
	int pair = (int)(id / 2), me = (int)(id % 2);
	__atomic_store_n(&pair_flag[pair][me], 1, __ATOMIC_RELEASE);
	double end = now_s() + spin_limit_s;
	volatile unsigned long x = 1;
	while (now_s() < end) {
		for (int i = 0; i < 2000; i++)
			x = x * 6364136223846793005ul + 1442695040888963407ul;
		if (__atomic_load_n(&pair_flag[pair][!me], __ATOMIC_ACQUIRE)) {
			pair_saw[pair][me] = 1;
			break;
		}
	}
	return NULL;
}

Test(preempt, runners_with_a_share_of_one_cpu)
{
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu() >= 0 ? sched_getcpu() : 0, &one);
	cr_assert_eq(sched_setaffinity(0, sizeof one, &one), 0);
	spin_limit_s = 30.0 * (double)slow_factor();
	start_q(NPAIRS, 1000);
	rt_thread_t *t[2 * NPAIRS];
	struct rt_attr a = RT_ATTR_INIT;
	for (long i = 0; i < 2 * NPAIRS; i++) {
		a.vp = (int)(i / 2);
		cr_assert_not_null(t[i] = rt_spawn_attr(&a, pair_spinner, (void *)i));
	}
	for (int i = 0; i < 2 * NPAIRS; i++)
		cr_assert_eq(rt_join(t[i], NULL), 0);
	stop();
	for (int p = 0; p < NPAIRS; p++)
		cr_expect(pair_saw[p][0] && pair_saw[p][1], "VP %d: its two threads did not both run", p);
}

/* ---- a runner kept off its CPU ---- */

/* Regression: while the VP's kernel thread could not run, the ticker queued one real-time signal
 * per quantum, and with SA_NODEFER the kernel stacked them all on the thread's stack when it ran
 * again (86 frames of ~3 KiB: SIGSEGV in the guard page). A SCHED_FIFO thread on the runner's
 * CPU keeps it off for 400 ms; the most preemption frames ever stacked on a thread must be one. */
static int offcpu_stop;
static long offcpu_running;
static int offcpu_cpu;

static void *offcpu_spinner(void *arg)
{
	if (arg) {
		cpu_set_t one;
		CPU_ZERO(&one);
		CPU_SET(offcpu_cpu, &one);
		sched_setaffinity(0, sizeof one, &one); /* the VP's kernel thread, not the process */
	}
	__atomic_fetch_add(&offcpu_running, 1, __ATOMIC_RELEASE);
	volatile unsigned long x = 1;
	while (!__atomic_load_n(&offcpu_stop, __ATOMIC_ACQUIRE))
		for (int i = 0; i < 2000; i++)
			x = x * 6364136223846793005ul + 1442695040888963407ul;
	return NULL;
}

static void *fifo_hog(void *arg)
{
	double end = now_s() + *(double *)arg;
	while (now_s() < end)
		;
	return NULL;
}

/* A SCHED_FIFO thread on offcpu_cpu for `secs`; false if this process may not make one. */
static bool hog_cpu(double secs)
{
	pthread_attr_t a;
	struct sched_param sp = { .sched_priority = 1 };
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(offcpu_cpu, &one);
	pthread_attr_init(&a);
	pthread_attr_setinheritsched(&a, PTHREAD_EXPLICIT_SCHED);
	pthread_attr_setschedpolicy(&a, SCHED_FIFO);
	pthread_attr_setschedparam(&a, &sp);
	pthread_attr_setaffinity_np(&a, sizeof one, &one);
	pthread_t t;
	int e = pthread_create(&t, &a, fifo_hog, &secs);
	pthread_attr_destroy(&a);
	if (e != 0)
		return false;
	pthread_join(t, NULL);
	return true;
}

Test(preempt, runner_kept_off_its_cpu_gets_one_request, .timeout = 120)
{
	cpu_set_t all;
#if defined(__SANITIZE_THREAD__)
	cr_skip_test("ThreadSanitizer holds an asynchronous signal until the thread's next "
		     "intercepted libc call, and these spinners make none");
#endif
	if (geteuid() != 0)
		cr_skip_test("needs root: a SCHED_FIFO thread keeps the VP's kernel thread off its CPU");
	if (sched_getaffinity(0, sizeof all, &all) != 0 || CPU_COUNT(&all) < 2)
		cr_skip_test("needs two CPUs: the ticker must run while one is taken");
	for (offcpu_cpu = 0; !CPU_ISSET(offcpu_cpu, &all); offcpu_cpu++)
		;
	static const unsigned quanta[] = { 50, 200, 1000 };
	for (size_t k = 0; k < sizeof quanta / sizeof quanta[0]; k++) {
		offcpu_stop = 0;
		offcpu_running = 0;
		start_q(1, quanta[k]);
		rt_thread_t *a = rt_spawn(offcpu_spinner, (void *)1L);
		rt_thread_t *b = rt_spawn(offcpu_spinner, NULL);
		cr_assert(a && b);
		struct rt_stats st;
		double end = now_s() + 20.0 * (double)slow_factor();
		do {
			usleep(2000);
			rt_stats(&st);
		} while ((st.preemptions < 4 || offcpu_running < 2) && now_s() < end);
		cr_assert_geq(st.preemptions, 4, "q %u us: the spinners are not being preempted",
			      quanta[k]);
		bool hogged = hog_cpu(0.4);
		usleep(50 * 1000); /* the runner takes what was queued for it */
		__atomic_store_n(&offcpu_stop, 1, __ATOMIC_RELEASE);
		cr_assert_eq(rt_join(a, NULL), 0);
		cr_assert_eq(rt_join(b, NULL), 0);
		rt_stats(&st);
		stop();
		if (!hogged)
			cr_skip_test("a SCHED_FIFO thread cannot be made here");
		cr_log_info("q %u us: %lu preemptions, %lu signals, deepest %lu frame(s)", quanta[k],
			    st.preemptions, st.preempt_signals, st.preempt_depth);
		cr_expect_eq(st.preempt_depth, 1, "q %u us: %lu preemption frames stacked on one "
			     "thread", quanta[k], st.preempt_depth);
	}
}
