/*
 * confirm.c - is a VP's runner really asleep in its system call?
 *
 * Detectors propose claims on evidence that can be stale: a standby that runs because its CPU
 * is idle sees the runner "in a call" on that CPU, but rseq's cpu_id is rewritten only on the
 * way back to user space, so a runner woken on another CPU still shows the old one; a watchdog
 * sees the same call at two looks, but a long call may simply be running. Before a claim acts
 * on such evidence it asks the kernel: /proc/self/task/TID/syscall answers "running" unless the
 * thread is off every CPU in a sleep, and the kernel checks that under the thread's run-queue
 * lock (wait_task_inactive), twice, around reading the thread's registers.
 *
 * The answer also orders memory, which is why the claim needs no membarrier after it (C2 in
 * docs/protocol.md): the claimer's C1 store precedes, in program order, the locked run-queue
 * access that found the runner off its CPU; the runner can run again only after a wakeup that
 * takes the same locks, so its T4 load comes after C1 is visible everywhere and sees it.
 *
 * One descriptor per VP, of its current runner's file, opened off the notice path where it can
 * be (sa_create, each sa_release after a hand-off); a claim that finds it naming an earlier
 * runner opens it again. The descriptor keeps its number across refreshes.
 */
#include <sys/syscall.h>
#include <fcntl.h>
#include "ks.h"

/* No stdio: this runs on activations' own stacks, where a sanitizer's interceptors would see
 * one stack under several threads. */
static int open_sysfile(pid_t tid)
{
	char path[48] = "/proc/self/task/", digits[12];
	int n = 0, at = 16;
	do
		digits[n++] = (char)('0' + tid % 10);
	while ((tid /= 10) > 0 && n < 11);
	while (n > 0)
		path[at++] = digits[--n];
	for (const char *s = "/syscall"; (path[at++] = *s++);)
		;
	return (int)ks_raw_syscall6(SYS_openat, AT_FDCWD, (long)path, O_RDONLY | O_CLOEXEC, 0, 0,
				    0);
}

/* Point vp's descriptor at its runner's file. The caller holds vp->ks_claiming (a claim, or the
 * runner itself while it cannot be in a call): nobody reads the descriptor meanwhile. */
static void refresh(struct ks_vp *vp, pid_t tid)
{
	int fd = open_sysfile(tid);
	if (fd < 0)
		return;
	if (vp->ks_sysfd < 0) {
		vp->ks_sysfd = fd;
	} else if (ks_raw_syscall6(SYS_dup3, fd, vp->ks_sysfd, O_CLOEXEC, 0, 0, 0) >= 0) {
		ks_raw_syscall6(SYS_close, fd, 0, 0, 0, 0, 0);
	} else {
		ks_raw_syscall6(SYS_close, fd, 0, 0, 0, 0, 0);
		return;
	}
	vp->ks_sysfd_tid = tid;
}

/* From the runner (sa_create, sa_release): make the descriptor name it, if it does not. */
void ks_sysfd_refresh(struct ks_vp *vp)
{
	pid_t tid = vp->ks_runner->ks_tid;
	uint32_t zero = 0;
	if (vp->ks_sysfd_tid == tid)
		return;
	if (!__atomic_compare_exchange_n(&vp->ks_claiming, &zero, 1, false, __ATOMIC_ACQUIRE,
					 __ATOMIC_RELAXED))
		return; /* a claim of an earlier call is ending: the next release does it */
	refresh(vp, tid);
	__atomic_store_n(&vp->ks_claiming, 0, __ATOMIC_RELEASE);
}

/* 1: `runner` sleeps in a system call, off its CPU, as seen after everything this thread stored
 * before; 0: it runs, was preempted, or sleeps outside a call; -1: this cannot be told here.
 * The caller holds vp->ks_claiming. */
int ks_runner_asleep(struct ks_vp *vp, struct ks_act *runner)
{
	char buf[32];
	if (vp->ks_sysfd_tid != runner->ks_tid)
		refresh(vp, runner->ks_tid);
	if (vp->ks_sysfd_tid != runner->ks_tid)
		return -1;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	long n = ks_raw_syscall6(SYS_pread64, vp->ks_sysfd, (long)buf, sizeof buf - 1, 0, 0, 0);
	if (n <= 0)
		return -1;
	/* "NR arg..." while asleep in call NR; "-1 sp pc" asleep outside a call; "running" */
	return buf[0] >= '0' && buf[0] <= '9';
}
