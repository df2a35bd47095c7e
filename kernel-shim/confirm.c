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
 * Each activation that may become a runner opens its own file once (sa_create for the thread
 * that calls it, a spare's first claim for the others) and keeps the descriptor for its life:
 * the runner changes at every hand-off, and opening the file at each claim would cost more than
 * the rest of the claim (~13 us for open, dup3 and close in a 2-vCPU guest against ~2.5 us for
 * the read). With a pool that reuses its newest spares first, a claim seldom opens one.
 * Activations never exit but with the thread whose runner they are (sa_destroy), which closes
 * it while no claim can be reading it. The descriptors live high in the table (high_fd_floor),
 * so that the numbers the program's own open() returns stay those syscall() alone would give.
 */
#include <sys/syscall.h>
#include <sys/resource.h>
#include <errno.h>
#include <fcntl.h>
#include "ks.h"

/* The descriptor limit (soft), or 0 when it cannot be read. */
static unsigned long nofile(void)
{
	struct rlimit rl;
	if (ks_raw_syscall6(SYS_prlimit64, 0, RLIMIT_NOFILE, 0, (long)&rl, 0, 0) != 0)
		return 0;
	return rl.rlim_cur == RLIM_INFINITY ? 1ul << 20 : (unsigned long)rl.rlim_cur;
}

/* Half the descriptor limit, at most 4096 (the kernel grows the table up to the number used). */
static long high_fd_floor(unsigned long limit)
{
	long half = limit ? (long)(limit / 2) : 1024;
	return half < 16 ? 16 : half > 4096 ? 4096 : half;
}

/* How many activations keep a descriptor: SYSFD_MAX, and no more than a sixteenth of the limit,
 * so that a program with many calls in the background (one activation each) keeps nearly all
 * of its descriptors. The pool reuses its newest spares first, so the activations that hand
 * off most have theirs; a runner without one is confirmed with membarrier instead. */
#define SYSFD_MAX 64
static unsigned sysfds;

#define SYSFD_NONE (-2) /* tried once, no descriptor to be had: not tried again */

/* From the activation itself. Raw calls, no stdio: this runs on activations' own stacks. No
 * descriptor free up there: none for good, and the claims of its calls fall back to membarrier
 * (a full table would otherwise see a number taken for a moment at every claim). */
void ks_sysfd_open(struct ks_act *self)
{
	if (self->ks_sysfd != -1)
		return;
	self->ks_sysfd = SYSFD_NONE;
	unsigned long limit = nofile();
	unsigned cap = limit / 16 < SYSFD_MAX ? (unsigned)(limit / 16) : SYSFD_MAX;
	if (__atomic_add_fetch(&sysfds, 1, __ATOMIC_RELAXED) > cap) {
		__atomic_sub_fetch(&sysfds, 1, __ATOMIC_RELAXED);
		return;
	}
	long fd = ks_raw_syscall6(SYS_openat, AT_FDCWD, (long)"/proc/thread-self/syscall",
				  O_RDONLY | O_CLOEXEC, 0, 0, 0);
	/* A process that gave up root may not open its own syscall file (it is the old owner's);
	   stat is world-readable and still tells a sleeping thread from a runnable one */
	self->ks_sysfd_stat = fd == -EACCES;
	if (fd == -EACCES)
		fd = ks_raw_syscall6(SYS_openat, AT_FDCWD, (long)"/proc/thread-self/stat",
				     O_RDONLY | O_CLOEXEC, 0, 0, 0);
	long high = fd < 0 ? -1
			   : ks_raw_syscall6(SYS_fcntl, fd, F_DUPFD_CLOEXEC, high_fd_floor(limit), 0,
					     0, 0);
	if (fd >= 0)
		ks_raw_syscall6(SYS_close, fd, 0, 0, 0, 0, 0);
	if (high >= 0)
		self->ks_sysfd = (int)high;
	else
		__atomic_sub_fetch(&sysfds, 1, __ATOMIC_RELAXED);
}

/* fork(): the child's only thread kept its activation, whose descriptor names the parent's
 * thread; the same number now names the child's (the program's descriptors do not move). */
void ks_sysfd_reopen_after_fork(struct ks_act *self)
{
	int old = self->ks_sysfd;
	self->ks_sysfd = -1;
	__atomic_store_n(&sysfds, 0, __ATOMIC_RELAXED); /* this is the child's only activation */
	ks_sysfd_open(self);
	if (old >= 0 && self->ks_sysfd < 0)
		ks_raw_syscall6(SYS_close, old, 0, 0, 0, 0, 0); /* it names the parent's thread */
	if (old < 0 || self->ks_sysfd < 0)
		return;
	if (ks_raw_syscall6(SYS_dup3, self->ks_sysfd, old, O_CLOEXEC, 0, 0, 0) >= 0) {
		ks_raw_syscall6(SYS_close, self->ks_sysfd, 0, 0, 0, 0, 0);
		self->ks_sysfd = old;
	}
}

/* sa_destroy: the activation's thread ends. The caller holds vp->ks_claiming for good. */
void ks_sysfd_close(struct ks_act *self)
{
	if (self->ks_sysfd >= 0) {
		ks_raw_syscall6(SYS_close, self->ks_sysfd, 0, 0, 0, 0, 0);
		__atomic_sub_fetch(&sysfds, 1, __ATOMIC_RELAXED);
	}
	self->ks_sysfd = -1;
}

/* The file's text while asleep in call NR is "NR 0x.. (six arguments) sp pc"; a descriptor the
 * program closed and reused for a file of its own must not pass for one. */
static bool says_in_call(const char *buf, long n)
{
	long i = 0;
	while (i < n && buf[i] >= '0' && buf[i] <= '9')
		i++;
	return i > 0 && i + 2 < n && buf[i] == ' ' && buf[i + 1] == '0' && buf[i + 2] == 'x';
}

/* The stat file: "TID (comm) S ..."; the state follows the last ')' (comm may hold any). S and D
 * sleep; R runs or waits for a CPU. Read without the runner's run-queue lock: no order. */
static int stat_says(int fd)
{
	char buf[512];
	long n = ks_raw_syscall6(SYS_pread64, fd, (long)buf, sizeof buf, 0, 0, 0);
	long close = -1;
	for (long i = 0; i < n; i++)
		if (buf[i] == ')')
			close = i;
	if (n <= 0 || buf[0] < '0' || buf[0] > '9' || close < 0 || close + 2 >= n)
		return -1;
	switch (buf[close + 2]) {
	case 'S': case 'D': return KS_ASLEEP_UNORDERED;
	case 'R': return 0;
	}
	return -1;
}

/* 1: `runner` sleeps in a system call, off its CPU, as seen after everything this thread stored
 * before; KS_ASLEEP_UNORDERED: it sleeps (its stat file), the order is the caller's to make;
 * 0: it runs, was preempted, or sleeps outside a call; -1: this cannot be told here.
 * Under vp->ks_claiming it is the claim's C2; without it, a hint (the claim asks again). */
int ks_runner_asleep(struct ks_act *runner)
{
	char buf[32];
	int fd = __atomic_load_n(&runner->ks_sysfd, __ATOMIC_RELAXED);
	if (fd < 0)
		return -1;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (runner->ks_sysfd_stat)
		return stat_says(fd);
	long n = ks_raw_syscall6(SYS_pread64, fd, (long)buf, sizeof buf, 0, 0, 0);
	if (n <= 0)
		return -1;
	/* "NR 0x.." asleep in call NR; "-1 sp pc" asleep outside a call; "running" */
	if (says_in_call(buf, n))
		return 1;
	return buf[0] == '-' || (n >= 7 && __builtin_memcmp(buf, "running", 7) == 0) ? 0 : -1;
}
