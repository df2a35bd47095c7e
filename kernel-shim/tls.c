/*
 * tls.c - identity that follows the user context.
 *
 * On x86-64 a thread's identity as user code sees it (errno, __thread variables, pthread_self())
 * is the TLS block that %fs points at. When a virtual processor moves to another activation, the
 * new one wears the user's TLS base and the blocked one takes the new one's old base: bases are
 * exchanged, never restored (docs/design.md, "Identity follows the user context").
 */
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <asm/prctl.h>
#include <pthread.h>
#include <unistd.h>
#include <string.h>
#include <sys/rseq.h>
#include <fcntl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include "ks.h"

#ifndef HWCAP2_FSGSBASE
#define HWCAP2_FSGSBASE (1 << 1)
#endif

static long tid_offset = -1; /* where glibc keeps a thread's tid inside its TLS block */

uint64_t ks_get_fs(void)
{
	uint64_t base;
	if (ks_have_fsgsbase) {
		__asm__ volatile("rdfsbase %0" : "=r"(base));
		return base;
	}
	ks_raw_syscall6(SYS_arch_prctl, ARCH_GET_FS, (long)&base, 0, 0, 0, 0);
	return base;
}

/* Offsets in the TLS block (at pthread_self()) that hold this thread's tid. */
static int tid_candidates(long *out, int max)
{
	pid_t tid = (pid_t)syscall(SYS_gettid);
	const pid_t *p = (const pid_t *)pthread_self();
	int n = 0;
	for (long i = 0; i < 256 && n < max; i++) /* the tid sits in the first 1 KiB */
		if (p[i] == tid)
			out[n++] = i * (long)sizeof(pid_t);
	return n;
}

static void *probe_thread(void *arg)
{
	long *c = arg;
	c[0] = tid_candidates(c + 1, 15);
	return NULL;
}

/* Find glibc's tid field by looking for the thread id in two threads' TLS blocks. Used only
 * to point the kernel's clear-on-exit address at the TLS a kernel thread wears, so that
 * pthread_join() of a thread whose VP moved still works. Not found: that feature is off. */
static void find_tid_offset(void)
{
	long mine[16], other[16] = { 0 };
	int n = tid_candidates(mine, 16);
	pthread_t t;
	if (pthread_create(&t, NULL, probe_thread, other) != 0)
		return;
	pthread_join(t, NULL);
	for (int i = 0; i < n; i++)
		for (long j = 0; j < other[0]; j++)
			if (mine[i] == other[j + 1]) {
				tid_offset = mine[i];
				return;
			}
}

void ks_tls_init(void)
{
	ks_have_fsgsbase = (getauxval(AT_HWCAP2) & HWCAP2_FSGSBASE) != 0;
	find_tid_offset();
}

/* The calling kernel thread now wears TLS block `fs`: when it exits, the kernel must clear and
 * wake that block's tid (what pthread_join() waits on), not the one it was created with. */
void ks_adopt_exit_tid(uint64_t fs)
{
	if (tid_offset >= 0)
		ks_raw_syscall6(SYS_set_tid_address, (long)(fs + (uint64_t)tid_offset), 0, 0, 0, 0, 0);
}

/*
 * Restartable sequences cannot follow the user context: the kernel writes the cpu id into the
 * area a kernel thread registered, on every return to user space, and glibc's area lives in the
 * TLS block the thread wore when it registered. Once blocks are exchanged, a blocked activation
 * returning from its call would write into a block that a finished user thread may already have
 * released. So each activation drops glibc's registration (glibc's sched_getcpu() then asks the
 * kernel: the kernel marks the area unregistered) and registers an area of its own, inside its
 * struct ks_act, which lives as long as the process: the idle detector reads the runner's CPU
 * there with a plain load.
 */
bool ks_rseq_ok = true;

bool ks_rseq_own(struct ks_act *act)
{
	act->ks_rseq.cpu_id = (uint32_t)RSEQ_CPU_ID_UNINITIALIZED;
	if (__rseq_size != 0) {
		void *area = (char *)ks_get_fs() + __rseq_offset;
		unsigned lens[2] = { 32, __rseq_size };
		for (int i = 0; i < 2; i++)
			if (ks_raw_syscall6(SYS_rseq, (long)area, lens[i], RSEQ_FLAG_UNREGISTER,
					    RSEQ_SIG, 0, 0) == 0)
				break;
	}
	long r = ks_raw_syscall6(SYS_rseq, (long)&act->ks_rseq, sizeof act->ks_rseq, 0, RSEQ_SIG,
				 0, 0);
	if (r != 0) {
		if (r == -ENOSYS)
			__atomic_store_n(&ks_rseq_ok, false, __ATOMIC_RELAXED);
		return false; /* cpu_id stays RSEQ_CPU_ID_UNINITIALIZED: no idle standby for it */
	}
	return true;
}

/* The thread is done with this activation (it exits, or leaves its VP for good): drop the
 * registration, so that a later activation of the same kernel thread can register its own. */
void ks_rseq_drop(struct ks_act *act)
{
	ks_raw_syscall6(SYS_rseq, (long)&act->ks_rseq, sizeof act->ks_rseq, RSEQ_FLAG_UNREGISTER,
			RSEQ_SIG, 0, 0);
}
