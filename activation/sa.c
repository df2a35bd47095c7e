/*
 * sa.c - the scheduler-activations interface (see sa.h), on top of the kernel shim.
 */
#include <sys/syscall.h>
#include <errno.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sched.h>
#include "sa.h"
#include "trace.h"
#include "sa-limits.h"
#include "../kernel-shim/ks.h"

__thread struct sa_mailbox *ks_self_mb __attribute__((tls_model("initial-exec")));

static pthread_once_t once = PTHREAD_ONCE_INIT;

/* fork(): the child has one thread, the caller. Its VP goes on (detector set up again at its
 * next call); every other VP belongs to a thread that does not exist there. */
static void atfork_prepare(void)
{
	pthread_mutex_lock(&ks_vps_lock);
	ks_acts_atfork_prepare();
}

static void atfork_parent(void)
{
	ks_acts_atfork_parent();
	pthread_mutex_unlock(&ks_vps_lock);
}

static void atfork_child(void)
{
	ks_acts_atfork_child();
	ks_watchdog_atfork_child();
	ks_idle_atfork_child();
	pthread_mutex_init(&ks_vps_lock, NULL);
	for (struct ks_vp *vp = ks_all_vps; vp; vp = vp->ks_all_next) {
		if (vp->ks_mbox != ks_self_mb) {
			vp->ks_dead = 1;
			continue;
		}
		struct ks_act *act = vp->ks_runner;
		act->ks_tid = (pid_t)ks_raw_syscall6(SYS_gettid, 0, 0, 0, 0, 0, 0);
		if (act->ks_perf_fd >= 0)
			close(act->ks_perf_fd); /* it watches the parent's thread */
		act->ks_perf_fd = -1;
		vp->ks_standby = NULL;
		vp->ks_idle_sb = NULL;
		vp->ks_sb_cpu1 = 0;
		vp->ks_refs = 0; /* whoever held one is a thread of the parent */
		vp->ks_parked = 0;
		vp->ks_claiming = 0;
		/* every call takes the slow route once, which sets the detector up again */
		memset(vp->ks_route, KS_ROUTE_REARM, sizeof vp->ks_route);
	}
}

/* No more activations than the process may have kernel threads: a limit past that is never
 * reached, thread creation fails first. An explicit setting that is clamped is said on stderr. */
static void clamp_activations(bool explicit)
{
	const char *which;
	unsigned long room = sa_thread_room(&which);
	if (ks_max_activations <= room)
		return;
	if (explicit)
		fprintf(stderr, "laio: LAIO_MAX_ACTIVATIONS=%lu is more kernel threads than this "
			"process may have (%s %lu); using %lu\n", ks_max_activations, which, room, room);
	ks_max_activations = room;
}

static void process_init(void)
{
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
	const char *e = getenv("LAIO_MAX_ACTIVATIONS");
	if (e && *e) {
		/* strictly a decimal count from 1 to 2^20, or the default with a warning */
		char *end;
		int saved = errno;
		errno = 0;
		long v = strtol(e, &end, 10);
		if (errno || end == e || *end || v < 1 || v > (1L << 20))
			fprintf(stderr, "laio: LAIO_MAX_ACTIVATIONS=%s is not a number from 1 to %ld; "
				"using %lu\n", e, 1L << 20, ks_max_activations);
		else
			ks_max_activations = (unsigned long)v;
		errno = saved;
	}
	clamp_activations(e && *e);
	ks_tls_init();
	ks_umask_init();
	ks_membarrier_init();
	ks_signals_init();
}

void sa_destroy(struct sa_mailbox *mb)
{
	struct ks_vp *vp = mb->sa_vp;
	pthread_mutex_lock(&ks_vps_lock);
	for (struct ks_vp **v = &ks_all_vps; *v; v = &(*v)->ks_all_next)
		if (*v == vp) {
			*v = vp->ks_all_next;
			break;
		}
	pthread_mutex_unlock(&ks_vps_lock);
	vp->ks_dead = 1;
	ks_idle_disarm(vp);
	if (vp->ks_standby) { /* back to the pool at its next notice */
		struct ks_act *sb = vp->ks_standby;
		vp->ks_standby = NULL;
		syscall(SYS_tgkill, getpid(), sb->ks_tid, KS_SIG_UPCALL);
	}
	ks_self_mb = NULL;
	/* the kernel must clear and wake the tid of the TLS block this thread wears as it exits
	   (what pthread_join waits on), whichever activation it was born as */
	ks_adopt_exit_tid(vp->ks_fs);
	ks_act_retire(vp->ks_runner);
	/* vp itself stays: blocked activations may still complete onto mb through it */
}

void sa_free(struct sa_mailbox *mb)
{
	struct ks_vp *vp = mb->sa_vp;
	/* the last completer may still be waking a parked VP after its enqueue */
	while (__atomic_load_n(&vp->ks_refs, __ATOMIC_ACQUIRE))
		sched_yield();
	free(vp);
	mb->sa_vp = NULL;
}

struct sa_mailbox *sa_self(void)
{
	return ks_self_mb;
}

void sa_thr_init(struct sa_thr_mailbox *tm)
{
	memset(tm, 0, sizeof(*tm));
	cds_wfcq_node_init(&tm->tm_next);
}

int sa_create(struct sa_mailbox *mb)
{
	if (!mb || !mb->sa_func || !mb->sa_stack || mb->sa_stacksize < 4096) {
		errno = EINVAL;
		return -1;
	}
	if (ks_self_mb) {
		errno = EBUSY;
		return -1;
	}
	pthread_once(&once, process_init);
	struct ks_vp *vp = calloc(1, sizeof(*vp));
	struct ks_act *act = vp ? ks_act_self_init() : NULL;
	if (!act) {
		free(vp);
		errno = ENOMEM;
		return -1;
	}
	vp->ks_mbox = mb;
	vp->ks_runner = act;
	vp->ks_kstack_top = act->ks_kstack_top;
	vp->ks_fs = act->ks_fs;
	act->ks_vp = vp;
	/* the cancel signal must reach this thread's calls when they run in the background here */
	sigset_t cancel;
	sigemptyset(&cancel);
	sigaddset(&cancel, KS_SIG_CANCEL);
	pthread_sigmask(SIG_UNBLOCK, &cancel, NULL);
	ks_umask_refresh();
	mb->sa_vp = vp;
	cds_wfcq_init(&mb->sa_completed_head, &mb->sa_completed_tail);
	ks_pool_prefill(1);
	ks_vp_register(vp);
	ks_self_mb = mb;
	sa_set_detector(mb, SA_DETECT_AUTO); /* cannot fail: auto falls back to the watchdog */
	return 0;
}

void ks_routes_fill(struct ks_vp *vp)
{
	/* auto: where the idle standby works, every call takes the trap (a plain read costs less
	   than its non-blocking probe, and the call keeps its thread); else the probe where a call
	   has a non-blocking form and its files can be held while it is moved (not recvmsg: its
	   descriptor is resolved only when the moved call starts; docs/reliability.md) */
	bool auto_probe = vp->ks_detector == SA_DETECT_AUTO && vp->ks_lazy != SA_DETECT_IDLE;
	for (long nr = 0; nr < 512; nr++) {
		int r;
		int cls = sa_call_class(nr);
		if (cls == SA_CALL_DIRECT)
			r = KS_ROUTE_DIRECT;
		else if (vp->ks_detector == SA_DETECT_PROBE)
			r = ks_probe_applies(nr) ? KS_ROUTE_PROBE : KS_ROUTE_DIRECT;
		else if (vp->ks_detector == SA_DETECT_EAGER)
			r = cls == SA_CALL_THREAD ? KS_ROUTE_DIRECT
			    : cls == SA_CALL_ARGS ? KS_ROUTE_MOVE_ARGS : KS_ROUTE_MOVE;
		else if (auto_probe && ks_probe_applies(nr) && ks_hold_applies(nr))
			r = KS_ROUTE_PROBE;
		else
			r = KS_ROUTE_TRAP;
		vp->ks_route[nr] = (unsigned char)r;
	}
}

/* The detector that watches trapped calls: auto takes the best that works here, of those
 * that leave the program's descriptor table alone. Not upcall: it keeps a perf event
 * descriptor in the process's table for each activation that runs or just ran the VP, so
 * while a call blocks the program's next open() may get a higher number, or EMFILE at a full
 * table (docs/reliability.md). */
static int lazy_detector(int d)
{
	if (d == SA_DETECT_AUTO)
		return ks_idle_available(NULL) ? SA_DETECT_IDLE : SA_DETECT_WATCHDOG;
	return d == SA_DETECT_PROBE || d == SA_DETECT_EAGER ? KS_LAZY_NONE : d;
}

int sa_detector_available(int d, const char **why)
{
	pthread_once(&once, process_init);
	if (why)
		*why = "";
	switch (d) {
	case SA_DETECT_UPCALL:
		return ks_upcall_available(why);
	case SA_DETECT_IDLE:
		return ks_idle_available(why);
	case SA_DETECT_AUTO: case SA_DETECT_PROBE: case SA_DETECT_WATCHDOG: case SA_DETECT_EAGER:
		return 1;
	}
	if (why)
		*why = "no such detector";
	return 0;
}

int sa_set_detector(struct sa_mailbox *mb, int d)
{
	struct ks_vp *vp = mb->sa_vp;
	if (d < 0 || d >= SA_DETECT_COUNT) {
		errno = EINVAL;
		return -1;
	}
	if (!sa_detector_available(d, NULL)) {
		errno = ENOTSUP;
		return -1;
	}
	ks_upcall_disarm(vp->ks_runner);
	vp->ks_detector = d;
	vp->ks_lazy = lazy_detector(d);
	if (vp->ks_lazy == SA_DETECT_IDLE && ks_idle_arm(vp) < 0)
		vp->ks_lazy = SA_DETECT_WATCHDOG; /* no activation for the standby: watch it so */
	if (vp->ks_lazy != SA_DETECT_IDLE)
		ks_idle_disarm(vp);
	ks_routes_fill(vp);
	if (vp->ks_lazy == SA_DETECT_UPCALL) {
		if (ks_upcall_arm(vp, vp->ks_runner) < 0)
			ks_upcall_fallback(vp);
	} else if (vp->ks_standby) {
		struct ks_act *sb = vp->ks_standby;
		vp->ks_standby = NULL; /* the standby returns to the pool at its next notice */
		syscall(SYS_tgkill, getpid(), sb->ks_tid, KS_SIG_UPCALL);
	}
	if (vp->ks_lazy == SA_DETECT_WATCHDOG)
		return ks_watchdog_start();
	return 0;
}

const char *sa_detector_name(struct sa_mailbox *mb, long nr)
{
	struct ks_vp *vp = mb->sa_vp;
	if (nr < 0 || nr >= 512)
		return "none";
	switch (vp->ks_route[nr]) {
	case KS_ROUTE_DIRECT: return "none";
	case KS_ROUTE_PROBE: return "probe";
	case KS_ROUTE_MOVE: case KS_ROUTE_MOVE_ARGS: return "eager";
	}
	if (vp->ks_wd_fallback)
		return "watchdog";
	return sa_trace_detector_name(vp->ks_lazy >= 0 ? vp->ks_lazy : vp->ks_detector);
}

/* Every route but the trap's (sa_syscall() takes that one itself): the raw result. */
__attribute__((noinline)) static long other_route(struct sa_mailbox *mb, long nr, long a1,
						  long a2, long a3, long a4, long a5, long a6)
{
	long raw;
	if (!mb || !mb->sa_curthread || (unsigned long)nr >= 512)
		return ks_raw_syscall6(nr, a1, a2, a3, a4, a5, a6);
	struct ks_vp *vp = mb->sa_vp;
	if (vp->ks_route[nr] == KS_ROUTE_REARM)
		sa_set_detector(mb, vp->ks_detector); /* refills the routes */
	long args[6] = { a1, a2, a3, a4, a5, a6 };
	switch (vp->ks_route[nr]) {
	case KS_ROUTE_TRAP:
		return ks_trap(nr, a1, a2, a3, a4, a5, a6);
	case KS_ROUTE_PROBE: {
		int p = ks_probe_try(nr, args, &raw);
		if (p == 0)
			return ks_move_call(vp, nr, args, SA_DETECT_PROBE, 0);
		if (p == 2) /* the rest of a partial read goes to the background */
			return ks_move_call(vp, nr, args, SA_DETECT_PROBE, raw);
		if (p < 0)
			return vp->ks_detector == SA_DETECT_AUTO
				? ks_trap(nr, a1, a2, a3, a4, a5, a6)
				: ks_raw_syscall6(nr, a1, a2, a3, a4, a5, a6);
		return raw;
	}
	case KS_ROUTE_MOVE:
		return ks_move_call(vp, nr, args, SA_DETECT_EAGER, 0);
	case KS_ROUTE_MOVE_ARGS:
		return sa_call_thread_bound(nr, args)
			? ks_raw_syscall6(nr, a1, a2, a3, a4, a5, a6)
			: ks_move_call(vp, nr, args, SA_DETECT_EAGER, 0);
	}
	raw = ks_raw_syscall6(nr, a1, a2, a3, a4, a5, a6);
	if (nr == SYS_rt_sigprocmask)
		ks_umask_refresh();
	return raw;
}

long sa_syscall(long nr, long a1, long a2, long a3, long a4, long a5, long a6)
{
	struct sa_mailbox *mb = ks_self_mb;
	struct ks_vp *vp;
	long raw;

	/* the path that does not block is the trap's: nothing else before it */
	if (__builtin_expect(mb && mb->sa_curthread && (unsigned long)nr < 512 &&
			     (vp = mb->sa_vp)->ks_route[nr] == KS_ROUTE_TRAP, 1))
		raw = ks_trap(nr, a1, a2, a3, a4, a5, a6);
	else
		raw = other_route(mb, nr, a1, a2, a3, a4, a5, a6);
	if (__builtin_expect((unsigned long)raw >= -4095UL, 0)) {
		errno = (int)-raw;
		return -1;
	}
	return raw;
}

/* Not instrumented by ThreadSanitizer (no_sanitize: gcc then emits no function entry either):
 * it never returns, and each entry it left on TSan's shadow call stack would stay there; a
 * program that blocks often overflowed TSan's 64Ki entries (laio_upcall() does the same). */
__attribute__((no_sanitize("thread")))
void sa_switch_to(struct sa_mailbox *mb, struct sa_thr_mailbox *tm, const struct sa_context *ctx,
		  long value)
{
	/* upcalls only happen inside sa_syscall() and sa_release(), never between these two
	   steps, so a plain store is "atomic with loading the context" here */
	__atomic_store_n(&mb->sa_curthread, tm, __ATOMIC_RELEASE); /* detectors read it */
	ks_resume(ctx, value);
}

long sa_save_and_run(struct sa_context *ctx, void (*fn)(void *), void *arg, void *stack_top)
{
	struct sa_mailbox *mb = ks_self_mb;
	if (mb && (char *)stack_top > (char *)mb->sa_stack &&
	    (char *)stack_top <= (char *)mb->sa_stack + mb->sa_stacksize)
		ks_stack_clean(mb->sa_stack, mb->sa_stacksize);
	return ks_save_and_run(ctx, fn, arg, (void *)((uintptr_t)stack_top & ~(uintptr_t)15));
}

void sa_counters(struct sa_counters *c)
{
	c->activations = __atomic_load_n(&ks_stat.activations, __ATOMIC_RELAXED);
	c->spares = __atomic_load_n(&ks_stat.spares, __ATOMIC_RELAXED) + ks_hold_parked();
	c->claims_won = __atomic_load_n(&ks_stat.claims_won, __ATOMIC_RELAXED);
	c->claims_lost = __atomic_load_n(&ks_stat.claims_lost, __ATOMIC_RELAXED);
	c->moved = __atomic_load_n(&ks_stat.moved, __ATOMIC_RELAXED);
	c->sync_fallback = __atomic_load_n(&ks_stat.sync_fallback, __ATOMIC_RELAXED);
	for (int d = 0; d < SA_DETECT_COUNT; d++)
		c->handoffs[d] = __atomic_load_n(&ks_stat.handoffs[d], __ATOMIC_RELAXED);
	c->idle_kicks = __atomic_load_n(&ks_stat.idle_kicks, __ATOMIC_RELAXED);
	c->mask_stale = __atomic_load_n(&ks_stat.mask_stale, __ATOMIC_RELAXED);
	c->idle_class = __atomic_load_n(&ks_stat.idle_class, __ATOMIC_RELAXED);
}
