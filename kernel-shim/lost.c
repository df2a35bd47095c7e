/*
 * lost.c - what a runner that lost its VP to a claimer does when its call returns (T6-T9 of
 * docs/protocol.md): it wears the claimer's old TLS block (trap.S did that before any C code),
 * completes the call onto the VP's completed list and becomes a spare.
 */
#include <sys/syscall.h>
#include <signal.h>
#include "ks.h"
#include "cgroup.h"

void ks_after_lost(struct ks_vp *vp, struct sa_thr_mailbox *m, long raw)
{
	struct ks_act *self = m->tm_act;
	uint64_t mine = 0;
	self->ks_fs = m->tm_swapfs;
	if (self->ks_in_cg) { /* out of the VP's cpu cgroup: it is no longer the VP's (vpgroup.c) */
		ks_cg_leave(0);
		self->ks_in_cg = false;
	}
	/* the mask the flow really had (a temporary one of its call is undone by now) against
	   the one the claimer gave it: a difference means a change the recorded mask missed */
	ks_raw_syscall6(SYS_rt_sigprocmask, SIG_BLOCK, 0, (long)&mine, sizeof mine, 0, 0);
	if ((mine ^ self->ks_mask_applied) & ~(KS_SIGBIT(KS_SIG_UPCALL) | KS_SIGBIT(KS_SIG_CANCEL)))
		KS_COUNT(mask_stale);
	ks_adopt_exit_tid(self->ks_fs);
	ks_carry_pending(vp); /* a signal sent to the flow's thread before the hand-off */
	/* it wore the user's mask; spares take only the cancel signal and glibc's own two (32,
	   33: setuid() in another thread waits for every thread to take 33). The raw call: no
	   sanitizer interceptor on this stack, which other threads have used. */
	uint64_t spare_mask = ~(KS_SIGBIT(KS_SIG_CANCEL) | KS_SIGBIT(32) | KS_SIGBIT(33));
	ks_raw_syscall6(SYS_rt_sigprocmask, SIG_SETMASK, (long)&spare_mask, 0, sizeof spare_mask, 0,
			0);
	ks_complete(vp, m, raw);
	ks_act_become_spare(self);
}
