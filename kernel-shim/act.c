/*
 * act.c - activations: kernel threads with their own stacks, and the pool of spares.
 *
 * The pool knows no roles: a spare runs the task {fn, arg} it is given (ks_act_give) and comes
 * back when the task returns. An activation never exits: once it has worn another thread's TLS
 * block it must not leave through glibc. Spares park on a futex after a short spin (a wakeup
 * across vCPUs costs ~39 us here, a spin handoff 0.13 us).
 *
 * No thread is created on the path between a block and its upcall: ks_act_take() only pops the
 * pool, and a spawner thread keeps a reserve ahead of demand, proportional to how fast spares
 * were taken and not given back lately. Where no spare can be had at all (the limit, or the system's), the caller
 * runs its call synchronously.
 */
#include <sys/mman.h>
#include <sys/syscall.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
#include <errno.h>
#include <string.h>
#include "ks.h"
#include "cgroup.h"
#include "../activation/sa-limits.h"

#define POOL_LOW 4          /* spares kept however quiet the process is */
#define RATE_WINDOW_NS 5000000u /* the reserve covers this long at the recent take rate */

unsigned long ks_max_activations = 65536;

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
/* Held while a kernel thread is being created, and by fork(): a child forked in the middle of
 * pthread_create() would inherit the creator's locks held (a sanitizer's thread registry, for
 * one), and the spawner creates threads at any time. */
static pthread_mutex_t create_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ks_act *pool;           /* LIFO: the last parked is the likeliest still spinning */
static struct ks_act *all_acts;
static int inject_failures;

/* The spawner's state. spawn_want is its futex: the reserve asked for. */
static uint32_t spawn_want;
static bool spawn_failed;             /* its last attempt failed (limit, no memory, no thread) */
static pid_t spawner_pid;             /* the process whose spawner runs (a forked child starts its own) */
static unsigned long takes;           /* spares taken, ever (the spawner's rate estimate) */

void ks_inject_create_failures(int n)
{
	__atomic_store_n(&inject_failures, n, __ATOMIC_RELAXED);
}

static struct ks_act *act_alloc(void)
{
	struct ks_act *act = aligned_alloc(_Alignof(struct ks_act), sizeof(*act));
	if (!act)
		return NULL;
	memset(act, 0, sizeof(*act));
	void *stk = mmap(NULL, KS_KSTACK_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
	if (stk == MAP_FAILED) {
		free(act);
		return NULL;
	}
	mprotect(stk, 4096, PROT_NONE); /* guard page: an overflow faults, it does not corrupt */
	act->ks_kstack_top = (char *)stk + KS_KSTACK_SIZE;
	act->ks_vg_stack = sa_vg_stack_register((char *)stk + 4096, KS_KSTACK_SIZE - 4096);
	act->ks_perf_fd = -1;
	act->ks_sysfd = -1;
	pthread_mutex_lock(&pool_lock);
	act->ks_all_next = all_acts;
	all_acts = act;
	pthread_mutex_unlock(&pool_lock);
	return act;
}

/* The thread that calls sa_create() is its VP's first activation. */
struct ks_act *ks_act_self_init(void)
{
	struct ks_act *act = act_alloc();
	if (!act)
		return NULL;
	act->ks_tid = (pid_t)syscall(SYS_gettid);
	act->ks_fs = ks_get_fs();
	act->ks_role = KS_RUNNER;
	act->ks_spin = ks_may_spin();
	ks_rseq_own(act);
	return act;
}

static void spare_main(void *arg);

static void *act_start(void *arg)
{
	struct ks_act *act = arg;
	act->ks_fs = ks_get_fs();
	act->ks_spin = ks_may_spin();
	ks_rseq_own(act);
	/* a thread starts in its creator's cpu cgroup, which may be a VP's (vpgroup.c) when a
	   runner starts it for a task of its own (the watchdog). Spares come from the spawner, in
	   the process's cgroup: no write for them (a move write-locks the kernel's lock that
	   every clone and exit of the process reads, for up to an RCU grace period) */
	if (act->ks_fn && strcmp(ks_cg_mode(), "off") != 0)
		ks_cg_leave(0);
	/* counted: the activations that run calls; a thread born for a long task of the pool or a
	   detector (spawner, watchdog) is not one (an idle standby counts itself) */
	if (!act->ks_fn)
		__atomic_fetch_add(&ks_stat.activations, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&act->ks_tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	ks_futex_wake((uint32_t *)&act->ks_tid, 1);
	KS_KSTACK_CLEAN(act);
	ks_run_on(act->ks_kstack_top, spare_main, act);
}

/* A detached kernel thread with a small pthread stack (it runs on its own stack at once),
 * born with every signal blocked but the cancel signal. 0 or pthread_create()'s error. */
static int start_thread(void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	sigset_t all, old;
	pthread_t t;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	sigfillset(&all);
	sigdelset(&all, KS_SIG_CANCEL);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&t, &attr, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	return rc;
}

/* May one more activation be born (of any kind: hold.c's movers too)? Not at the limit, nor
 * when a failure is injected (which this consumes). The first refusal is said once. */
bool ks_act_may_create(void)
{
	int inj = __atomic_load_n(&inject_failures, __ATOMIC_RELAXED);
	if (inj > 0 && __atomic_compare_exchange_n(&inject_failures, &inj, inj - 1, false,
						   __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
		sa_limit_notice(SA_LIMIT_CREATE, EAGAIN);
		return false;
	}
	if (__atomic_load_n(&ks_stat.activations, __ATOMIC_RELAXED) >= ks_max_activations) {
		sa_limit_notice(SA_LIMIT_ACTIVATIONS, ks_max_activations);
		return false;
	}
	return true;
}

/* A new activation. It joins the pool, unless it is born with a task (`fn`): a thread of the
 * pool's or a detector's own (spawner, watchdog, standbys), which the limit on activations that
 * run calls does not count. */
static struct ks_act *act_create(ks_task_fn *fn, void *arg)
{
	if (!fn && !ks_act_may_create())
		return NULL;
	struct ks_act *act = act_alloc();
	if (!act)
		return NULL;
	act->ks_fn = fn;
	act->ks_arg = arg;
	pthread_mutex_lock(&create_lock);
	int rc = start_thread(act_start, act);
	/* its tid must be known before anyone routes a signal to it */
	while (rc == 0 && __atomic_load_n(&act->ks_tid, __ATOMIC_ACQUIRE) == 0)
		ks_futex_wait((uint32_t *)&act->ks_tid, 0, NULL);
	pthread_mutex_unlock(&create_lock);
	if (rc != 0)
		sa_limit_notice(SA_LIMIT_CREATE, (unsigned long)rc); /* act stays on all_acts, unused */
	return rc == 0 ? act : NULL;
}

/* A thread of its own for a long task (a detector's standby or monitor): 0 or -1. */
int ks_act_start(ks_task_fn *fn, void *arg)
{
	return act_create(fn, arg) ? 0 : -1;
}

static unsigned long spares_now(void)
{
	return __atomic_load_n(&ks_stat.spares, __ATOMIC_RELAXED);
}

/* Ask the spawner for a reserve of at least n spares. */
void ks_pool_reserve(unsigned n)
{
	if (__atomic_load_n(&spawn_want, __ATOMIC_RELAXED) >= n)
		return;
	__atomic_store_n(&spawn_want, n, __ATOMIC_RELEASE);
	ks_futex_wake(&spawn_want, 1);
}

/* Which spare to wake. The newest if it still spins (no wakeup at all). Else, given a CPU, one
 * that went to sleep there: the kernel wakes a thread on its previous CPU when that CPU is idle,
 * and waking a halted vCPU costs tens of microseconds in a guest, while the CPU of a detector
 * that runs there is at hand (an idle-class standby counts as idle to the wakeup). */
#define NEAR_SCAN 8

static struct ks_act **pick(int32_t cpu)
{
	struct ks_act **at = &pool;
	if (cpu < 0 || !pool || !__atomic_load_n(&pool->ks_sleeping, __ATOMIC_RELAXED))
		return at;
	int n = 0;
	for (struct ks_act **p = &pool; *p && n < NEAR_SCAN; p = &(*p)->ks_next, n++)
		if (ks_cpu_of(*p) == cpu)
			return p;
	return at;
}

/* A spare, or NULL; near `cpu` if one is (-1: any). Never creates a thread: the spawner does,
 * off this path. */
struct ks_act *ks_act_take_near(int32_t cpu)
{
	pthread_mutex_lock(&pool_lock);
	struct ks_act **at = pick(cpu);
	struct ks_act *act = *at;
	if (act) {
		*at = act->ks_next;
		ks_stat.spares--;
	}
	unsigned long left = ks_stat.spares;
	pthread_mutex_unlock(&pool_lock);
	__atomic_fetch_add(&takes, 1, __ATOMIC_RELAXED);
	if (left < POOL_LOW || !act)
		ks_pool_reserve(POOL_LOW + 1);
	return act;
}

struct ks_act *ks_act_take(void)
{
	return ks_act_take_near(-1);
}

/* No spare now, and none will come: the limit is reached or the system refused a thread. */
bool ks_act_exhausted(void)
{
	return spares_now() == 0 &&
	       (__atomic_load_n(&ks_stat.activations, __ATOMIC_RELAXED) >= ks_max_activations ||
		__atomic_load_n(&spawn_failed, __ATOMIC_RELAXED));
}

/* A spare for a call that must go to one now (a moved call): an empty pool is refilled by the
 * spawner, off this path, and the caller waits for it rather than run synchronously, unless
 * no spare can come at all (NULL). */
struct ks_act *ks_act_wait_take(void)
{
	struct ks_act *spare;
	while (!(spare = ks_act_take()) && !ks_act_exhausted())
		ks_raw_syscall6(SYS_sched_yield, 0, 0, 0, 0, 0, 0);
	return spare;
}

/* Hand task {fn, arg} to an activation taken with ks_act_take(). */
void ks_act_give(struct ks_act *act, ks_task_fn *fn, void *arg)
{
	act->ks_fn = fn;
	act->ks_arg = arg;
	__atomic_store_n(&act->ks_wake, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&act->ks_sleeping, __ATOMIC_SEQ_CST))
		ks_futex_wake(&act->ks_wake, 1);
}

/*
 * The spawner: a normal-class thread that keeps the pool ahead of demand. Every few
 * milliseconds while spares are being taken it sets the reserve to POOL_LOW plus the spares
 * taken in the last RATE_WINDOW_NS (a burst of hand-offs then finds spares made ahead), and
 * creates threads until the pool holds that many; it sleeps when nothing is taken.
 */
static void spawner_main(struct ks_act *self, void *arg)
{
	unsigned long last_used = 0;
	uint64_t last_ns = ks_now_ns();
	(void)self;
	(void)arg;
	for (;;) {
		uint64_t now = ks_now_ns();
		unsigned long t = __atomic_load_n(&takes, __ATOMIC_RELAXED);
		unsigned long want = __atomic_load_n(&spawn_want, __ATOMIC_ACQUIRE);
		if (now - last_ns >= RATE_WINDOW_NS / 4) {
			/* the net demand: spares taken and not given back (a spare that comes back at
			   once, as a call that did not block, needs no other) */
			unsigned long used = __atomic_load_n(&ks_stat.activations, __ATOMIC_RELAXED) -
					     spares_now();
			unsigned long recent = used > last_used ? (used - last_used) * RATE_WINDOW_NS /
								  (now - last_ns) : 0;
			if (POOL_LOW + recent > want)
				want = POOL_LOW + recent;
			last_used = used;
			last_ns = now;
		}
		if (spares_now() < want) {
			bool made = act_create(NULL, NULL) != NULL;
			__atomic_store_n(&spawn_failed, !made, __ATOMIC_RELAXED);
			if (made)
				continue;
		}
		/* enough, or at the limit: sleep until asked again, or look at the rate again
		   soon while spares are being taken */
		__atomic_store_n(&spawn_want, 0, __ATOMIC_RELAXED);
		if (__atomic_load_n(&takes, __ATOMIC_RELAXED) != t) {
			struct timespec ts = { 0, RATE_WINDOW_NS / 4 };
			ks_raw_syscall6(SYS_nanosleep, (long)&ts, 0, 0, 0, 0, 0);
		} else {
			ks_futex_wait(&spawn_want, 0, NULL);
		}
	}
}

/* Start the spawner (from a normal-class thread: a thread inherits its creator's policy) and
 * make the first POOL_LOW spares. */
void ks_pool_init(void)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	pthread_mutex_lock(&lock);
	if (spawner_pid != getpid()) {
		bool made = act_create(spawner_main, NULL) != NULL;
		if (made)
			spawner_pid = getpid();
		/* without a spawner no spare will come: calls that block run synchronously */
		__atomic_store_n(&spawn_failed, !made, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&lock);
	ks_pool_reserve(POOL_LOW);
}

/* The kernel thread that was the process's first (the thread group leader) must never exit
 * while the process lives: /proc/self, readlink("/proc/self/exe") and the process's VmRSS are
 * its. Activations exit only as the runner of a thread that ends, so once the leader has left
 * its VP (its call went to the background and finished) it takes no other VP: it parks here for
 * the life of the process instead of joining the pool. */
static void park_leader_for_good(struct ks_act *act)
{
	static uint32_t never;
	act->ks_role = KS_SPARE;
	act->ks_vp = NULL;
	for (;;)
		ks_futex_wait(&never, 0, NULL);
}

/*
 * A spin pays only while the thread that will give the next task runs on another CPU: a wakeup
 * across vCPUs costs ~39 us here, one on the same CPU a few. Spinning on the CPU of the VP whose
 * call this activation just finished holds off that VP's runner, which its completion has just
 * woken there (and, once the runner blocks again, the idle standby, which runs only on an idle
 * CPU): unpinned, a pipe's write -> laio_poll took ~55 us instead of ~13 us that way.
 */
bool ks_spin_pays(const struct ks_act *self, int32_t waited_cpu)
{
	return self->ks_spin && (waited_cpu < 0 || ks_cpu_of(self) != waited_cpu);
}

static bool spin_pays(struct ks_act *act)
{
	struct ks_vp *vp = act->ks_vp; /* the VP of the call it ran, if any (VPs are never freed) */
	struct ks_act *runner = vp ? __atomic_load_n(&vp->ks_runner, __ATOMIC_ACQUIRE) : NULL;
	return ks_spin_pays(act, runner ? ks_cpu_of(runner) : -1);
}

static void pool_put(struct ks_act *act)
{
	if (act->ks_tid == getpid())
		park_leader_for_good(act);
	act->ks_spin_now = spin_pays(act);
	act->ks_role = KS_SPARE;
	act->ks_vp = NULL;
	act->ks_counted = true; /* activations == spares + idle class + the ones at work */
	pthread_mutex_lock(&pool_lock);
	act->ks_next = pool;
	pool = act;
	ks_stat.spares++;
	pthread_mutex_unlock(&pool_lock);
}

/* Spin (if `spin`), then sleep, until someone gives `act` a task (ks_act_give). */
static void wait_given(struct ks_act *act, bool spin)
{
	uint64_t until = spin ? ks_now_ns() + KS_SPIN_NS : 0;
	while (!__atomic_load_n(&act->ks_wake, __ATOMIC_ACQUIRE)) {
		if (ks_now_ns() < until) {
			ks_spin_pause();
			continue;
		}
		__atomic_store_n(&act->ks_sleeping, 1, __ATOMIC_SEQ_CST);
		if (!__atomic_load_n(&act->ks_wake, __ATOMIC_SEQ_CST))
			ks_futex_wait(&act->ks_wake, 0, NULL);
		__atomic_store_n(&act->ks_sleeping, 0, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&act->ks_wake, 0, __ATOMIC_RELAXED);
}

static void spare_main(void *arg)
{
	struct ks_act *act = arg;
	for (;;) {
		if (act->ks_fn) { /* born with a task: it runs it first */
			ks_task_fn *fn = act->ks_fn;
			act->ks_fn = NULL;
			fn(act, act->ks_arg);
			continue;
		}
		pool_put(act);
		wait_given(act, act->ks_spin_now);
	}
}

/* For an activation kept out of the pool (a VP group's standby or ready spare): sleep until a
 * task is given, and run it. */
void ks_act_run_given(struct ks_act *act)
{
	wait_given(act, false);
	ks_task_fn *fn = act->ks_fn;
	act->ks_fn = NULL;
	fn(act, act->ks_arg);
}

/* Back to the pool on a fresh stack (the old frames belong to a finished flow). */
void ks_act_become_spare(struct ks_act *act)
{
	act->ks_fn = NULL;
	KS_KSTACK_CLEAN(act);
	ks_run_on(act->ks_kstack_top, spare_main, act);
}

/* fork(): only the calling thread exists in the child; the pool's threads do not. */
void ks_acts_atfork_prepare(void)
{
	pthread_mutex_lock(&create_lock);
	pthread_mutex_lock(&pool_lock);
}

void ks_acts_atfork_parent(void)
{
	pthread_mutex_unlock(&pool_lock);
	pthread_mutex_unlock(&create_lock);
}

void ks_acts_atfork_child(void)
{
	spawn_want = 0;
	spawn_failed = false;
	pthread_mutex_init(&pool_lock, NULL);
	pthread_mutex_init(&create_lock, NULL);
	pool = NULL;
	ks_stat.spares = 0;
	ks_stat.activations = 0;
	ks_stat.idle_class = 0;
}

/* The activation of an exiting thread: it will never run again. Its stack goes back to the
 * system; the small struct stays (a detector may still be reading it as the VP's runner). */
void ks_act_retire(struct ks_act *act)
{
	act->ks_role = KS_BLOCKED;
	ks_rseq_drop(act); /* the caller is its kernel thread */
	sa_vg_stack_forget(act->ks_vg_stack);
	munmap((char *)act->ks_kstack_top - KS_KSTACK_SIZE, KS_KSTACK_SIZE);
}
