/*
 * signals.c - the shim's two signals. The cancel signal (sa_interrupt) stops a call in the
 * window between "about to enter the kernel" and the syscall instruction, in the trap or in a
 * moved call, or interrupts the system call itself; the upcall detector's notices are taken
 * with sigwaitinfo() and must not kill a thread they stray to.
 */
#include <signal.h>
#include <ucontext.h>
#include "ks.h"

extern char ks_trap_window_start[], ks_trap_window_end[], ks_trap_eintr[];

/* Touches no TLS. */
static void cancel_handler(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	uintptr_t ip = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
	(void)sig;
	(void)si;
	if (ip >= (uintptr_t)ks_cancel_window_start && ip < (uintptr_t)ks_cancel_window_end)
		uc->uc_mcontext.gregs[REG_RIP] = (greg_t)(uintptr_t)ks_cancel_out;
	else if (ip >= (uintptr_t)ks_trap_window_start && ip < (uintptr_t)ks_trap_window_end &&
		 __atomic_load_n(&((struct sa_thr_mailbox *)uc->uc_mcontext.gregs[REG_R13])->tm_cstate,
				 __ATOMIC_ACQUIRE) >= SA_CALL_CANCELLING)
		/* in the trap window r13 is the call's mailbox: only a cancelled call is stopped */
		uc->uc_mcontext.gregs[REG_RIP] = (greg_t)(uintptr_t)ks_trap_eintr;
}

static void upcall_stray(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
}

void ks_signals_init(void)
{
	struct sigaction sa = { 0 };
	sa.sa_sigaction = cancel_handler;
	sa.sa_flags = SA_SIGINFO; /* no SA_RESTART: an interrupted call reports EINTR */
	sigfillset(&sa.sa_mask);
	sigaction(KS_SIG_CANCEL, &sa, NULL);
	sa.sa_sigaction = upcall_stray;
	sigaction(KS_SIG_UPCALL, &sa, NULL);
}
