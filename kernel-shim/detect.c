/*
 * detect.c - choosing a VP's detector, and the routes its calls take.
 *
 * Trapped calls are watched by one of the detectors behind struct ks_detector (idle, upcall,
 * watchdog); probe and eager are routes instead: they move a call to a spare before it can block
 * (move.c). auto takes, for every call, the best that works here: the idle detector where rseq
 * works (with the watchdog as its backstop), else the probe for calls that have a non-blocking
 * form and the watchdog for the rest.
 */
#include <sys/syscall.h>
#include <string.h>
#include "ks.h"

static const struct ks_detector *const table[SA_DETECT_COUNT] = {
	[SA_DETECT_UPCALL] = &ks_det_upcall,
	[SA_DETECT_WATCHDOG] = &ks_det_watchdog,
	[SA_DETECT_IDLE] = &ks_det_idle,
};

static const char *const names[SA_DETECT_COUNT] = {
	[SA_DETECT_AUTO] = "auto", [SA_DETECT_UPCALL] = "upcall", [SA_DETECT_PROBE] = "probe",
	[SA_DETECT_WATCHDOG] = "watchdog", [SA_DETECT_EAGER] = "eager", [SA_DETECT_IDLE] = "idle",
};

int ks_detector_available(int d, const char **why)
{
	if (why)
		*why = "";
	if (d < 0 || d >= SA_DETECT_COUNT) {
		if (why)
			*why = "no such detector";
		return 0;
	}
	const struct ks_detector *det = table[d];
	return det && det->available ? det->available(why) : 1;
}

/* The detector of trapped calls for choice d (NULL: nothing is trapped). */
static const struct ks_detector *lazy(int d)
{
	/* auto: never upcall, which keeps perf event descriptors in the process's table, where
	   the program sees them (a higher number from open(), EMFILE at a full table) */
	if (d == SA_DETECT_AUTO)
		return ks_det_idle.available(NULL) ? &ks_det_idle : &ks_det_watchdog;
	return table[d];
}

static void routes_fill(struct ks_vp *vp)
{
	/* auto: where the idle standby works, every call takes the trap (a plain read costs less
	   than its non-blocking probe, and the call keeps its thread); else the probe where a call
	   has a non-blocking form and its files can be held while it is moved (not recvmsg: its
	   descriptor is resolved only when the moved call starts; docs/reliability.md) */
	int d = vp->ks_detector;
	bool auto_probe = d == SA_DETECT_AUTO && vp->ks_det != &ks_det_idle;
	for (long nr = 0; nr < KS_NCALLS; nr++) {
		int r;
		int cls = sa_call_class(nr);
		if (nr == SYS_rt_sigprocmask)
			r = KS_ROUTE_MASK;
		else if (cls == SA_CALL_DIRECT)
			r = KS_ROUTE_DIRECT;
		else if (d == SA_DETECT_PROBE)
			r = ks_probe_applies(nr) ? KS_ROUTE_PROBE : KS_ROUTE_DIRECT;
		else if (d == SA_DETECT_EAGER)
			r = cls == SA_CALL_THREAD ? KS_ROUTE_DIRECT
			    : cls == SA_CALL_ARGS ? KS_ROUTE_MOVE_ARGS : KS_ROUTE_MOVE;
		else if (auto_probe && ks_probe_applies(nr) && ks_hold_applies(nr))
			r = KS_ROUTE_PROBE;
		else
			r = KS_ROUTE_TRAP;
		vp->ks_route[nr] = (unsigned char)r;
	}
}

void ks_detector_disarm(struct ks_vp *vp)
{
	const struct ks_detector *old = vp->ks_det;
	__atomic_store_n(&vp->ks_det, NULL, __ATOMIC_RELEASE);
	__atomic_store_n(&vp->ks_watch, KS_WATCH_NONE, __ATOMIC_RELEASE);
	if (old && old->disarm)
		old->disarm(vp);
}

/* Choose detector d for vp (validated by the caller). A detector that cannot be armed here (no
 * activation for a standby, no perf event) leaves the VP to the watchdog. 0 or -1. */
int ks_detector_set(struct ks_vp *vp, int d)
{
	const struct ks_detector *det = lazy(d);
	ks_detector_disarm(vp);
	vp->ks_detector = d;
	if (det && det->arm(vp) < 0) {
		det = &ks_det_watchdog;
		if (det->arm(vp) < 0)
			return -1;
	}
	__atomic_store_n(&vp->ks_det, det, __ATOMIC_RELEASE);
	routes_fill(vp);
	return 0;
}

const char *ks_detector_name(struct ks_vp *vp, long nr)
{
	if (nr < 0 || nr >= KS_NCALLS)
		return "none";
	switch (vp->ks_route[nr]) {
	case KS_ROUTE_DIRECT: case KS_ROUTE_MASK: return "none";
	case KS_ROUTE_PROBE: return "probe";
	case KS_ROUTE_MOVE: case KS_ROUTE_MOVE_ARGS: return "eager";
	}
	if (vp->ks_watch == KS_WATCH_DETECT)
		return "watchdog";
	return vp->ks_det ? vp->ks_det->name : names[vp->ks_detector];
}

/* From the trap (T1k): call the kick of every detector whose bit is set for `cpu`. */
void ks_trap_kick(struct ks_vp *vp, int32_t cpu)
{
	uint32_t bits = __atomic_load_n(&ks_kick[cpu & (KS_MAXCPU - 1)], __ATOMIC_RELAXED);
	for (int id = 0; bits; id++, bits >>= 1)
		if ((bits & 1) && table[id] && table[id]->kick)
			table[id]->kick(vp, cpu);
}

/* An exiting thread's activation: every detector's per-thread resources. */
void ks_detectors_retire(struct ks_act *act)
{
	for (int id = 0; id < SA_DETECT_COUNT; id++)
		if (table[id] && table[id]->retire)
			table[id]->retire(act);
}

void ks_detectors_atfork_child(void)
{
	for (int id = 0; id < SA_DETECT_COUNT; id++)
		if (table[id] && table[id]->atfork_child)
			table[id]->atfork_child();
}
