/*
 * vp.c - virtual processors: their memory, the registry of every VP, and references.
 *
 * Detectors look at VPs from threads that must never wait for a lock a normal thread holds (the
 * idle detector's standbys run at SCHED_IDLE: a normal thread waiting for one would wait as long
 * as the CPU is busy). So the registry is read without a lock: a VP, once made, is never given
 * back to malloc and never leaves the list (the memory is type-stable, as a thread mailbox is);
 * a freed VP is marked dead and reused in place by the next sa_create(). Only writers (normal
 * threads, off every call's path) take ks_vps_lock. A reader that meets a VP being reused reads
 * the new VP's words: everything it proposes is checked again by the claim (C0-C3).
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sched.h>
#include <sys/syscall.h>
#include "ks.h"
#include "ks-offsets.h"

_Static_assert(offsetof(struct sa_context, rsp) == CTX_RSP, "ctx layout");
_Static_assert(offsetof(struct sa_context, rip) == CTX_RIP, "ctx layout");
_Static_assert(offsetof(struct sa_context, mxcsr) == CTX_MXCSR, "ctx layout");
_Static_assert(offsetof(struct sa_context, fpucw) == CTX_FPUCW, "ctx layout");
_Static_assert(offsetof(struct sa_thr_mailbox, tm_sys) == TM_SYS, "mailbox layout");
_Static_assert(offsetof(struct sa_thr_mailbox, tm_claim) == TM_CLAIM, "mailbox layout");
_Static_assert(offsetof(struct sa_thr_mailbox, tm_verdict) == TM_VERDICT, "mailbox layout");
_Static_assert(offsetof(struct sa_thr_mailbox, tm_swapfs) == TM_SWAPFS, "mailbox layout");
_Static_assert(offsetof(struct sa_thr_mailbox, tm_cstate) == TM_CSTATE, "mailbox layout");
_Static_assert(offsetof(struct sa_thr_mailbox, tm_nr) == TM_NR, "mailbox layout");
_Static_assert(offsetof(struct sa_thr_mailbox, tm_args) == TM_ARGS, "mailbox layout");
_Static_assert(offsetof(struct sa_mailbox, sa_curthread) == SA_CURTHREAD, "mailbox layout");
_Static_assert(offsetof(struct sa_mailbox, sa_vp) == SA_VP, "mailbox layout");
_Static_assert(offsetof(struct ks_vp, ks_kstack_top) == VP_KSTACK, "vp layout");
_Static_assert(offsetof(struct ks_vp, ks_runner) == VP_RUNNER, "vp layout");
_Static_assert(offsetof(struct ks_act, ks_rseq) + offsetof(struct rseq, cpu_id) == ACT_RSEQ_CPU,
	       "act layout");
_Static_assert(SA_CALL_CANCELLING == SA_CALL_CANCELLING_V, "cstate");
_Static_assert(SA_CALL_CANCELLED == SA_CALL_CANCELLED_V, "cstate");
_Static_assert(KS_MAXCPU == KS_MAXCPU_V && (KS_MAXCPU & (KS_MAXCPU - 1)) == 0, "kick words");

struct ks_vp *ks_all_vps;         /* every VP ever made; heads only grow (release stores) */
pthread_mutex_t ks_vps_lock = PTHREAD_MUTEX_INITIALIZER;
int ks_vp_cgroup_default = 0;

/* A VP for mailbox mb, run by `runner`: a dead one reused in place, or a new one. Not in the
 * registry yet (ks_vp_register). NULL when out of memory. */
struct ks_vp *ks_vp_new(struct sa_mailbox *mb, struct ks_act *runner)
{
	struct ks_vp *vp = NULL;
	pthread_mutex_lock(&ks_vps_lock);
	for (struct ks_vp *v = ks_all_vps; v; v = v->ks_all_next)
		if (v->ks_dead == 2) { /* freed by ks_vp_free: nobody refers to it */
			vp = v;
			vp->ks_dead = 3;   /* being reused: nobody else takes it */
			break;
		}
	pthread_mutex_unlock(&ks_vps_lock);
	if (!vp) {
		vp = calloc(1, sizeof(*vp));
		if (!vp)
			return NULL;
		vp->ks_dead = 3;
	}
	/* everything but the registry's link and the references, which others may read */
	vp->ks_det = NULL;
	vp->ks_claiming = 0;
	vp->ks_parked = 0;
	vp->ks_kicked = 0;
	vp->ks_detector = SA_DETECT_AUTO;
	vp->ks_watch = KS_WATCH_NONE;
	vp->ks_nsync_seen = 0;
	vp->ks_cgroup = ks_vp_cgroup_default;
	vp->ks_grp = NULL;
	memset(&vp->ks_ev, 0, sizeof vp->ks_ev);
	memset(&vp->ks_up, 0, sizeof vp->ks_up);
	memset(&vp->ks_wd, 0, sizeof vp->ks_wd);
	memset(&vp->ks_idle, 0, sizeof vp->ks_idle);
	vp->ks_mbox = mb;
	vp->ks_fs = runner->ks_fs;
	vp->ks_kstack_top = runner->ks_kstack_top;
	__atomic_store_n(&vp->ks_runner, runner, __ATOMIC_RELEASE);
	runner->ks_vp = vp;
	return vp;
}

/* The VP is live: detectors may look at it. A new VP is linked at the head once. */
void ks_vp_register(struct ks_vp *vp)
{
	pthread_mutex_lock(&ks_vps_lock);
	bool linked = false;
	for (struct ks_vp *v = ks_all_vps; v; v = v->ks_all_next)
		linked |= v == vp;
	if (!linked) {
		vp->ks_all_next = ks_all_vps;
		__atomic_store_n(&ks_all_vps, vp, __ATOMIC_RELEASE);
	}
	__atomic_store_n(&vp->ks_dead, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&ks_vps_lock);
}

/* The VP's thread is gone (sa_destroy): detectors stop looking at it. */
void ks_vp_unregister(struct ks_vp *vp)
{
	/* seq_cst: a detector takes a reference, then loads ks_dead; ks_vp_free() waits for the
	   references after this store (either the detector sees the VP dead, or the wait sees it) */
	__atomic_store_n(&vp->ks_dead, 1, __ATOMIC_SEQ_CST);
}

/* sa_destroy(): no claim is under way, and none will start (ks_claiming is held for good; the
 * next ks_vp_new() clears it). The runner's confirmation file may then be closed. */
void ks_vp_stop_claims(struct ks_vp *vp)
{
	uint32_t zero = 0;
	while (!__atomic_compare_exchange_n(&vp->ks_claiming, &zero, 1, false, __ATOMIC_ACQUIRE,
					    __ATOMIC_RELAXED)) {
		zero = 0;
		sched_yield(); /* a claimer holds it for a few hundred ns */
	}
}

/* The kernel thread running vp's user code now. Read here, in the shim, which ThreadSanitizer
 * builds leave uninstrumented: the runner changes under the reader's feet, by design. */
pid_t ks_vp_runner_tid(struct ks_vp *vp)
{
	struct ks_act *runner = __atomic_load_n(&vp->ks_runner, __ATOMIC_RELAXED);
	return runner ? runner->ks_tid : 0;
}

void ks_vp_ref(struct ks_vp *vp)
{
	__atomic_fetch_add(&vp->ks_refs, 1, __ATOMIC_SEQ_CST);
}

void ks_vp_unref(struct ks_vp *vp)
{
	__atomic_fetch_sub(&vp->ks_refs, 1, __ATOMIC_RELEASE);
}

/* sa_free(): wait until nothing refers to the VP, then let the next sa_create() reuse it. */
void ks_vp_free(struct ks_vp *vp)
{
	/* the last completer may still be waking a parked VP after its enqueue */
	while (__atomic_load_n(&vp->ks_refs, __ATOMIC_SEQ_CST))
		sched_yield();
	vp->ks_mbox = NULL;
	__atomic_store_n(&vp->ks_dead, 2, __ATOMIC_RELEASE);
}

/* fork(): the child has one thread, the caller. Its VP goes on (its detector is set up again at
 * its next call: KS_ROUTE_REARM); every other VP belongs to a thread that does not exist there. */
void ks_vps_atfork_prepare(void)
{
	pthread_mutex_lock(&ks_vps_lock);
}

void ks_vps_atfork_parent(void)
{
	pthread_mutex_unlock(&ks_vps_lock);
}

void ks_vps_atfork_child(struct sa_mailbox *self)
{
	pthread_mutex_init(&ks_vps_lock, NULL);
	for (struct ks_vp *vp = ks_all_vps; vp; vp = vp->ks_all_next) {
		if (vp->ks_dead)
			continue;
		if (!self || vp->ks_mbox != self) {
			vp->ks_dead = 1;
			continue;
		}
		struct ks_act *act = vp->ks_runner;
		act->ks_tid = (pid_t)ks_raw_syscall6(SYS_gettid, 0, 0, 0, 0, 0, 0);
		if (act->ks_perf_fd >= 0)
			close(act->ks_perf_fd); /* it watches the parent's thread */
		act->ks_perf_fd = -1;
		ks_sysfd_reopen_after_fork(act);
		memset(&vp->ks_up, 0, sizeof vp->ks_up);
		memset(&vp->ks_wd, 0, sizeof vp->ks_wd);
		memset(&vp->ks_idle, 0, sizeof vp->ks_idle);
		vp->ks_det = NULL;
		vp->ks_watch = KS_WATCH_NONE;
		vp->ks_refs = 0; /* whoever held one is a thread of the parent */
		vp->ks_parked = 0;
		vp->ks_claiming = 0;
		/* every call takes the slow route once, which sets the detector up again */
		memset(vp->ks_route, KS_ROUTE_REARM, sizeof vp->ks_route);
	}
}
