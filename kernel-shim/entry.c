/*
 * entry.c - every route of sa_syscall() but the trap's fast path (activation/sa.c takes that
 * one inline): the probe, moved calls, calls that never block, and calls made outside a VP.
 */
#include <sys/syscall.h>
#include "ks.h"

static long raw6(long nr, const long a[6])
{
	return ks_raw_syscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

/* The raw result (-errno on error), or what an upcall handler resumed the caller with. */
__attribute__((noinline)) long ks_syscall_slow(struct sa_mailbox *mb, long nr, long a1, long a2,
					       long a3, long a4, long a5, long a6)
{
	long args[6] = { a1, a2, a3, a4, a5, a6 };
	long raw;
	if (!mb || !mb->sa_curthread || (unsigned long)nr >= KS_NCALLS) {
		raw = raw6(nr, args);
		if (nr == SYS_rt_sigprocmask)
			ks_umask_refresh();
		return raw;
	}
	struct ks_vp *vp = mb->sa_vp;
	if (vp->ks_route[nr] == KS_ROUTE_REARM) {
		/* the first call after fork(): the child has none of the parent's threads */
		ks_pool_init();
		ks_detector_set(vp, vp->ks_detector); /* refills the routes */
	}
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
			return vp->ks_detector == SA_DETECT_AUTO ? ks_trap(nr, a1, a2, a3, a4, a5, a6)
								 : raw6(nr, args);
		return raw;
	}
	case KS_ROUTE_MOVE:
		return ks_move_call(vp, nr, args, SA_DETECT_EAGER, 0);
	case KS_ROUTE_MOVE_ARGS:
		return sa_call_thread_bound(nr, args) ? raw6(nr, args)
						      : ks_move_call(vp, nr, args, SA_DETECT_EAGER, 0);
	case KS_ROUTE_MASK:
		/* never blocks, under any detector; the recorded mask follows it (sigmask.c) */
		raw = raw6(nr, args);
		ks_umask_refresh();
		return raw;
	}
	return raw6(nr, args);
}
