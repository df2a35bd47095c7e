/*
 * cancel.c - interrupting a call that runs in the background (sa_interrupt): a call not started
 * yet never starts; a running one gets the cancel signal, whose handler (signals.c) stops it in
 * the trap's or the moved call's window, or interrupts the system call itself.
 */
#include <sys/syscall.h>
#include <unistd.h>
#include <errno.h>
#include "ks.h"

/* 0, or -ENOENT: the call already finished. */
int ks_interrupt(struct sa_thr_mailbox *m)
{
	for (;;) {
		int st = __atomic_load_n(&m->tm_cstate, __ATOMIC_ACQUIRE);
		switch (st) {
		case SA_CALL_QUEUED:
			if (__atomic_compare_exchange_n(&m->tm_cstate, &st, SA_CALL_CANCELLED, false,
							__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
				return 0;
			break;
		case SA_CALL_RUNNING:
			if (__atomic_compare_exchange_n(&m->tm_cstate, &st, SA_CALL_CANCELLING, false,
							__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
				struct ks_act *act = m->tm_act;
				/* the activation cannot finish and move on before CANCELLED */
				ks_raw_syscall6(SYS_tgkill, getpid(), act->ks_tid, KS_SIG_CANCEL, 0, 0, 0);
				__atomic_store_n(&m->tm_cstate, SA_CALL_CANCELLED, __ATOMIC_RELEASE);
				return 0;
			}
			break;
		case SA_CALL_CANCELLING:
		case SA_CALL_CANCELLED:
			return 0;
		default:
			return -ENOENT;
		}
	}
}
