/*
 * act.c - activations: kernel threads with their own stacks, and the pool of spares.
 *
 * An activation never exits: once it has worn another thread's TLS block it must not leave
 * through glibc. Spares park on a futex after a short spin (a wakeup across vCPUs costs ~39 us
 * here, a spin handoff 0.13 us). The pool is pre-filled and grows on demand up to
 * ks_max_activations; when no spare can be had, the caller runs its call synchronously.
 */
#include <sys/mman.h>
#include <sys/syscall.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
#include <errno.h>
#include <string.h>
#include "ks.h"
#include "../activation/sa-limits.h"

unsigned long ks_max_activations = 65536;
struct ks_counters ks_stat;

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
/* Held while a kernel thread is being created, and by fork(): a child forked in the middle of
 * pthread_create() would inherit the creator's locks held (a sanitizer's thread registry, for
 * one), and the spawner creates threads at any time. */
static pthread_mutex_t create_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ks_act *pool;           /* LIFO: the last parked is the likeliest still spinning */
static struct ks_act *all_acts;
static int inject_failures;

void sa_inject_create_failures(int n)
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
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stk == MAP_FAILED) {
		free(act);
		return NULL;
	}
	mprotect(stk, 4096, PROT_NONE); /* guard page: an overflow faults, it does not corrupt */
	act->ks_kstack_top = (char *)stk + KS_KSTACK_SIZE;
	act->ks_perf_fd = -1;
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
	act->ks_nvcsw = ks_nvcsw();
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
	__atomic_fetch_add(&ks_stat.activations, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&act->ks_tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	ks_futex_wake((uint32_t *)&act->ks_tid, 1);
	KS_KSTACK_CLEAN(act);
	ks_run_on(act->ks_kstack_top, spare_main, act);
}

/* A detached kernel thread with a small pthread stack, born with every signal blocked (but the
 * cancel signal, if `cancel_open`). 0 or pthread_create()'s error. */
static int start_thread(void *(*fn)(void *), void *arg, bool cancel_open)
{
	pthread_attr_t attr;
	sigset_t all, old;
	pthread_t t;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	sigfillset(&all);
	if (cancel_open)
		sigdelset(&all, KS_SIG_CANCEL);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&t, &attr, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	return rc;
}

/* May one more activation be born (of any kind: hold.c's movers too)? Not at the limit, nor
 * when a failure is injected (which this consumes). */
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

/* A new kernel thread, born with every signal blocked but the cancel signal. It joins the
 * pool, unless it is created for a caller that gives it a task at once (`for_caller`). */
static struct ks_act *act_create(bool for_caller)
{
	if (!ks_act_may_create())
		return NULL;
	struct ks_act *act = act_alloc();
	if (!act)
		return NULL;
	act->ks_skip_pool = for_caller;
	pthread_mutex_lock(&create_lock);
	int rc = start_thread(act_start, act, true);
	/* its tid must be known before anyone routes a signal to it */
	while (rc == 0 && __atomic_load_n(&act->ks_tid, __ATOMIC_ACQUIRE) == 0)
		ks_futex_wait((uint32_t *)&act->ks_tid, 0, NULL);
	pthread_mutex_unlock(&create_lock);
	if (rc != 0)
		sa_limit_notice(SA_LIMIT_CREATE, (unsigned long)rc);
	return rc == 0 ? act : NULL; /* a failed one stays on all_acts, unused: harmless */
}

/* Take a spare (the pool's newest), creating one if the pool is empty. NULL at the limit. */
/* The pool's newest spare, or NULL; `left` gets how many stay. */
static struct ks_act *pool_pop(unsigned long *left)
{
	pthread_mutex_lock(&pool_lock);
	struct ks_act *act = pool;
	if (act) {
		pool = act->ks_next;
		ks_stat.spares--;
	}
	*left = ks_stat.spares;
	pthread_mutex_unlock(&pool_lock);
	return act;
}

struct ks_act *ks_act_get(void)
{
	unsigned long left;
	struct ks_act *act = pool_pop(&left);
	return act ? act : act_create(true);
}

/* Hand a task to an activation taken with ks_act_get(). */
void ks_act_give(struct ks_act *act, int kind, void *task)
{
	act->ks_task_kind = kind;
	act->ks_task = task;
	__atomic_store_n(&act->ks_wake, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&act->ks_sleeping, __ATOMIC_SEQ_CST))
		ks_futex_wake(&act->ks_wake, 1);
}

/* A spare from the pool, or NULL: never creates a thread. For the idle detector's standby: a
 * thread inherits its creator's scheduling policy, and one born at SCHED_IDLE could not leave
 * it without privilege (user code must never run there). It asks the spawner instead. */
struct ks_act *ks_act_take(void)
{
	unsigned long left;
	struct ks_act *act = pool_pop(&left);
	unsigned long busy = __atomic_load_n(&ks_stat.activations, __ATOMIC_RELAXED) - left;
	/* keep a quarter of the activations in use spare, at least KS_POOL_LOW: calls that go to
	   the background in bursts then find a spare made ahead, not one made on their path */
	unsigned long want = KS_POOL_LOW + busy / 4;
	if (left < want)
		ks_pool_request((unsigned)want);
	return act;
}

/* The spawner: a normal-class thread that tops the pool up to what was asked (spawn_want) when
 * a thread that must not create threads itself (an idle-class standby) finds it low. */
static uint32_t spawn_want;   /* futex */
bool ks_spawn_failed;         /* its last attempt failed (limit, no memory, no thread) */
static pid_t spawner_pid;     /* the process whose spawner runs (a forked child starts its own) */

static void *spawner_main(void *arg)
{
	(void)arg;
	for (;;) {
		uint32_t want = __atomic_load_n(&spawn_want, __ATOMIC_ACQUIRE);
		pthread_mutex_lock(&pool_lock);
		unsigned long have = ks_stat.spares;
		pthread_mutex_unlock(&pool_lock);
		if (have < want) {
			bool made = act_create(false) != NULL;
			__atomic_store_n(&ks_spawn_failed, !made, __ATOMIC_RELAXED);
			if (made)
				continue;
		}
		/* asked for no more, or at the limit: sleep until asked again */
		__atomic_store_n(&spawn_want, 0, __ATOMIC_RELAXED);
		ks_futex_wait(&spawn_want, 0, NULL);
	}
	return NULL;
}

/* Start the spawner (from a normal-class thread: it inherits its creator's policy). */
int ks_spawner_start(void)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	int rc = 0;
	pthread_mutex_lock(&lock);
	if (spawner_pid != getpid()) {
		rc = start_thread(spawner_main, NULL, false) == 0 ? 0 : -1;
		if (rc == 0)
			spawner_pid = getpid();
	}
	pthread_mutex_unlock(&lock);
	return rc;
}

/* Ask the spawner to bring the pool to at least `n` spares. */
void ks_pool_request(unsigned n)
{
	uint32_t cur = __atomic_load_n(&spawn_want, __ATOMIC_RELAXED);
	if (cur >= n)
		return;
	__atomic_store_n(&spawn_want, n, __ATOMIC_RELEASE);
	ks_futex_wake(&spawn_want, 1);
}

/* Make sure at least `n` spares are idle (not: n more per call; threads come and go). */
void ks_pool_prefill(int n)
{
	pthread_mutex_lock(&pool_lock);
	int idle = (int)ks_stat.spares;
	pthread_mutex_unlock(&pool_lock);
	for (int i = idle; i < n; i++) {
		struct ks_act *act = act_create(false);
		if (!act)
			return;
	}
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

static void pool_put(struct ks_act *act)
{
	if (act->ks_tid == getpid())
		park_leader_for_good(act);
	act->ks_role = KS_SPARE;
	act->ks_vp = NULL;
	pthread_mutex_lock(&pool_lock);
	act->ks_next = pool;
	pool = act;
	ks_stat.spares++;
	pthread_mutex_unlock(&pool_lock);
}

/* Spin, then sleep, until someone gives this spare a task. */
static void wait_for_task(struct ks_act *act)
{
	uint64_t until = act->ks_spin ? ks_now_ns() + KS_SPIN_NS : 0;
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
		if (!act->ks_skip_pool)
			pool_put(act);
		act->ks_skip_pool = false;
		wait_for_task(act);
		switch (act->ks_task_kind) {
		case KS_TASK_CALL:
			ks_run_moved_call(act, act->ks_task); /* returns once completed */
			break;
		case KS_TASK_CLAIM: {
			/* only returns if the runner came back first */
			struct ks_vp *vp = act->ks_vp;
			ks_claim(act, vp, act->ks_task, act->ks_claim_s, act->ks_claim_by);
			__atomic_fetch_sub(&vp->ks_refs, 1, __ATOMIC_RELEASE);
			break;
		}
		case KS_TASK_STANDBY:
			ks_standby_loop(act, act->ks_task);
			break;
		case KS_TASK_IDLE:
			ks_idle_loop(act, act->ks_task);
		}
	}
}

/* Back to the pool on a fresh stack (the old frames belong to a finished flow). */
void ks_act_become_spare(struct ks_act *act)
{
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
	pthread_mutex_init(&pool_lock, NULL);
	pthread_mutex_init(&create_lock, NULL);
	pool = NULL;
	ks_stat.spares = 0;
	ks_stat.activations = 0;
	ks_stat.idle_class = 0;
}

/* The activation of an exiting thread: it will never run again. Its stack goes back to the
 * system; the small struct stays (a standby may still be reading it as the VP's runner). */
void ks_act_retire(struct ks_act *act)
{
	int fd = act->ks_perf_fd;
	act->ks_perf_fd = -1;
	if (fd >= 0)
		close(fd);
	act->ks_role = KS_BLOCKED;
	ks_rseq_drop(act); /* the caller is its kernel thread */
	munmap((char *)act->ks_kstack_top - KS_KSTACK_SIZE, KS_KSTACK_SIZE);
}
