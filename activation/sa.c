/*
 * sa.c - the scheduler-activations interface (see sa.h): every sa_* entry point, each a thin
 * layer over the kernel shim (kernel-shim/ks.h), the way kse(2)'s system calls enter the kernel.
 */
#include <sys/syscall.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "sa.h"
#include "sa-limits.h"
#include "../kernel-shim/ks.h"

__thread struct sa_mailbox *ks_self_mb __attribute__((tls_model("initial-exec")));

static pthread_once_t once = PTHREAD_ONCE_INIT;

/* fork(): the child has one thread, the caller (docs/design.md). */
static void atfork_prepare(void)
{
	ks_vps_atfork_prepare();
	ks_acts_atfork_prepare();
}

static void atfork_parent(void)
{
	ks_acts_atfork_parent();
	ks_vps_atfork_parent();
}

static void atfork_child(void)
{
	ks_acts_atfork_child();
	ks_detectors_atfork_child();
	ks_vps_atfork_child(ks_self_mb);
}

/* LAIO_MAX_ACTIVATIONS: strictly a decimal count from 1 to 2^20, or the default with a warning. */
static void read_limit(void)
{
	const char *e = getenv("LAIO_MAX_ACTIVATIONS");
	if (!e || !*e)
		return;
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

/* LAIO_CGROUP: 0 or 1, whether VPs get cpu cgroups of their own by default (0 unless set). */
static void read_cgroup(void)
{
	const char *e = getenv("LAIO_CGROUP");
	if (!e || !*e)
		return;
	if (strcmp(e, "0") == 0 || strcmp(e, "1") == 0)
		ks_vp_cgroup_default = e[0] == '1';
	else
		fprintf(stderr, "laio: LAIO_CGROUP=%s is not 0 or 1; using %d\n", e,
			ks_vp_cgroup_default);
}

static void process_init(void)
{
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
	read_limit();
	read_cgroup();
	const char *e = getenv("LAIO_MAX_ACTIVATIONS");
	clamp_activations(e && *e);
	ks_tls_init();
	ks_umask_init();
	ks_claim_init();
	ks_signals_init();
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
	struct ks_act *act = ks_act_self_init();
	struct ks_vp *vp = act ? ks_vp_new(mb, act) : NULL;
	if (!vp) {
		if (act)
			ks_act_retire(act);
		errno = ENOMEM;
		return -1;
	}
	/* the cancel signal must reach this thread's calls when they run in the background here */
	sigset_t cancel;
	sigemptyset(&cancel);
	sigaddset(&cancel, KS_SIG_CANCEL);
	pthread_sigmask(SIG_UNBLOCK, &cancel, NULL);
	ks_umask_refresh();
	mb->sa_vp = vp;
	vp->ks_vg_upcall = sa_vg_stack_register(mb->sa_stack, mb->sa_stacksize);
	cds_wfcq_init(&mb->sa_completed_head, &mb->sa_completed_tail);
	ks_pool_init();
	ks_sysfd_open(act); /* the claims of this VP's calls confirm with it */
	ks_vp_register(vp);
	ks_self_mb = mb;
	sa_set_detector(mb, SA_DETECT_AUTO); /* cannot fail: auto falls back to the watchdog */
	return 0;
}

void sa_destroy(struct sa_mailbox *mb)
{
	struct ks_vp *vp = mb->sa_vp;
	ks_detector_disarm(vp);
	ks_vp_unregister(vp);
	ks_self_mb = NULL;
	/* the kernel must clear and wake the tid of the TLS block this thread wears as it exits
	   (what pthread_join waits on), whichever activation it was born as */
	ks_adopt_exit_tid(vp->ks_fs);
	ks_detectors_retire(vp->ks_runner);
	ks_vp_stop_claims(vp);
	ks_sysfd_close(vp->ks_runner);
	ks_act_retire(vp->ks_runner);
	/* vp itself stays: blocked activations may still complete onto mb through it */
}

void sa_free(struct sa_mailbox *mb)
{
	sa_vg_stack_forget(mb->sa_vp->ks_vg_upcall); /* the caller may free the stack next */
	ks_vp_free(mb->sa_vp);
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

int sa_detector_available(int d, const char **why)
{
	pthread_once(&once, process_init);
	return ks_detector_available(d, why);
}

int sa_set_detector(struct sa_mailbox *mb, int d)
{
	if (d < 0 || d >= SA_DETECT_COUNT) {
		errno = EINVAL;
		return -1;
	}
	if (!sa_detector_available(d, NULL)) {
		errno = ENOTSUP;
		return -1;
	}
	if (ks_detector_set(mb->sa_vp, d) < 0) {
		errno = EAGAIN; /* no thread for the watchdog either */
		return -1;
	}
	return 0;
}

int sa_set_cgroup(struct sa_mailbox *mb, int on)
{
	struct ks_vp *vp = mb->sa_vp;
	if (on != 0 && on != 1) {
		errno = EINVAL;
		return -1;
	}
	if (vp->ks_cgroup == on)
		return 0;
	vp->ks_cgroup = on;
	/* only the idle detector uses the group: set it up again, in or out of one */
	if (vp->ks_det == &ks_det_idle && ks_detector_set(vp, vp->ks_detector) < 0) {
		errno = EAGAIN;
		return -1;
	}
	return 0;
}

const char *sa_cgroup(struct sa_mailbox *mb, const char **why)
{
	const char *w;
	const char *mode = ks_vpg_state(mb->sa_vp, &w);
	if (why)
		*why = w;
	return mode;
}

const char *sa_detector_name(struct sa_mailbox *mb, long nr)
{
	return ks_detector_name(mb->sa_vp, nr);
}

long sa_syscall(long nr, long a1, long a2, long a3, long a4, long a5, long a6)
{
	struct sa_mailbox *mb = ks_self_mb;
	struct ks_vp *vp;
	long raw;

	/* the path that does not block is the trap's: nothing else before it */
	if (__builtin_expect(mb && mb->sa_curthread && (unsigned long)nr < KS_NCALLS &&
			     (vp = mb->sa_vp)->ks_route[nr] == KS_ROUTE_TRAP, 1))
		raw = ks_trap(nr, a1, a2, a3, a4, a5, a6);
	else
		raw = ks_syscall_slow(mb, nr, a1, a2, a3, a4, a5, a6);
	if (__builtin_expect((unsigned long)raw >= -4095UL, 0)) {
		errno = (int)-raw;
		return -1;
	}
	return raw;
}

int sa_release(struct sa_mailbox *mb, const struct timespec *timeout)
{
	int err = ks_release(mb->sa_vp, timeout); /* returns only for a bad timespec */
	errno = -err;
	return -1;
}

void sa_wakeup(struct sa_mailbox *mb)
{
	if (!mb || !mb->sa_vp)
		return; /* kse_wakeup(NULL), "any KSE", has no meaning for per-thread VPs */
	ks_wakeup(mb->sa_vp);
}

int sa_has_completed(struct sa_mailbox *mb)
{
	return ks_has_completed(mb);
}

struct sa_thr_mailbox *sa_take_completed(struct sa_mailbox *mb)
{
	return ks_take_completed(mb);
}

int sa_interrupt(struct sa_thr_mailbox *m)
{
	int r = ks_interrupt(m);
	if (r < 0) {
		errno = -r;
		return -1;
	}
	return 0;
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
	struct ks_counters k;
	ks_counters_read(&k);
	c->activations = k.activations;
	c->spares = k.spares + ks_hold_parked();
	c->claims_won = k.claims_won;
	c->claims_lost = k.claims_lost;
	c->moved = k.moved;
	c->sync_fallback = k.sync_fallback;
	for (int d = 0; d < SA_DETECT_COUNT; d++)
		c->handoffs[d] = k.handoffs[d];
	c->idle_kicks = k.idle_kicks;
	c->mask_stale = k.mask_stale;
	c->idle_class = k.idle_class;
}

void sa_inject_create_failures(int n)
{
	ks_inject_create_failures(n);
}

/* trace/trace.h: the kernel thread running mb's user code now. */
int sa_runner_tid(struct sa_mailbox *mb)
{
	return mb && mb->sa_vp ? ks_vp_runner_tid(mb->sa_vp) : 0;
}
