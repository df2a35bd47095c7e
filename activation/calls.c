/*
 * calls.c - which system calls may run on another kernel thread than the caller's.
 *
 * A lazy detector (idle, upcall, watchdog) never moves a call: it runs on the calling kernel
 * thread and only the flow moves on if it blocks. The eager and probe detectors move calls to a
 * spare activation before they run, which is right only for calls whose meaning does not depend
 * on the calling kernel thread. Every number of the kernel's table (asm/unistd_64.h) falls in
 * one class; docs/syscalls.md lists them all, generated from the table by
 * scripts/syscall-classes.sh, and test_calls checks that the table and this file agree.
 *
 *   SA_CALL_DIRECT   ends, replaces or clones the thread or process: never through the trap
 *   SA_CALL_THREAD   acts on, or answers for, the calling kernel thread: never moved
 *   SA_CALL_ARGS     thread-bound for some arguments (pid 0 meaning "the caller", RUSAGE_THREAD,
 *                    a thread CPU clock, a path under /proc/thread-self): decided per call
 *   SA_CALL_ANY      acts on the process, its memory or its files: may run anywhere
 */
#include <sys/syscall.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <errno.h>
#include <unistd.h>
#include <string.h>
#include <time.h>
#include <stdint.h>
#include "sa.h"

int sa_call_class(long nr)
{
	switch (nr) {
	case SYS_exit: case SYS_exit_group: case SYS_execve: case SYS_execveat: case SYS_fork:
	case SYS_vfork: case SYS_clone: case SYS_clone3: case SYS_rt_sigreturn:
		return SA_CALL_DIRECT;

	/* the thread's identity, signal state and scheduling */
	case SYS_gettid: case SYS_set_tid_address: case SYS_set_robust_list:
	case SYS_get_robust_list: case SYS_rseq: case SYS_arch_prctl: case SYS_set_thread_area:
	case SYS_get_thread_area: case SYS_prctl: case SYS_personality: case SYS_seccomp:
	case SYS_rt_sigprocmask: case SYS_rt_sigpending: case SYS_rt_sigsuspend:
	case SYS_rt_sigtimedwait: case SYS_sigaltstack: case SYS_pause: case SYS_restart_syscall:
	case SYS_sched_setaffinity: case SYS_sched_getaffinity: case SYS_sched_yield:
	case SYS_getcpu: case SYS_set_mempolicy: case SYS_get_mempolicy: case SYS_iopl:
	case SYS_ioperm: case SYS_unshare: case SYS_setns: case SYS_landlock_restrict_self:
	case SYS_keyctl: case SYS_ptrace:
	/* credentials: per thread in the kernel (glibc's wrappers make every thread change them;
	   the raw calls change, and report, only the caller's) */
	case SYS_setuid: case SYS_setgid: case SYS_setreuid: case SYS_setregid:
	case SYS_setresuid: case SYS_setresgid: case SYS_setfsuid: case SYS_setfsgid:
	case SYS_setgroups: case SYS_getuid: case SYS_geteuid: case SYS_getgid: case SYS_getegid:
	case SYS_getresuid: case SYS_getresgid: case SYS_getgroups: case SYS_capget:
	case SYS_capset:
		return SA_CALL_THREAD;

	case SYS_getrusage: case SYS_clock_gettime: case SYS_clock_getres:
	case SYS_clock_nanosleep: case SYS_getpriority: case SYS_setpriority:
	case SYS_ioprio_get: case SYS_ioprio_set: case SYS_sched_setscheduler:
	case SYS_sched_getscheduler: case SYS_sched_setparam: case SYS_sched_getparam:
	case SYS_sched_setattr: case SYS_sched_getattr: case SYS_sched_rr_get_interval:
	case SYS_perf_event_open: case SYS_timer_create:
	case SYS_open: case SYS_openat: case SYS_openat2: case SYS_readlink: case SYS_readlinkat:
	case SYS_stat: case SYS_lstat: case SYS_newfstatat: case SYS_statx: case SYS_access:
	case SYS_faccessat: case SYS_faccessat2:
		return SA_CALL_ARGS;
	}
	return SA_CALL_ANY;
}

/* A CPU-time clock id of the calling thread: CLOCK_THREAD_CPUTIME_ID, or a dynamic thread
 * clock (per-thread flag 4) of pid 0 (the kernel's CPUCLOCK encoding: ~pid << 3 | flags). */
static bool own_thread_clock(long clk)
{
	int32_t c = (int32_t)clk; /* clockid_t */
	if (c == CLOCK_THREAD_CPUTIME_ID)
		return true;
	return c < 0 && (c & 4) && (c >> 3) == -1;
}

static bool thread_self_path(long p)
{
	/* read it through the kernel: a bad pointer is the call's EFAULT to report, not a fault of
	   ours (only the eager detector asks, for calls that take a path) */
	static const char want[] = "/proc/thread-self";
	char buf[sizeof want - 1];
	struct iovec local = { buf, sizeof buf }, remote = { (void *)p, sizeof buf };
	if (syscall(SYS_process_vm_readv, getpid(), &local, 1, &remote, 1, 0) != (long)sizeof buf)
		return false;
	return memcmp(buf, want, sizeof buf) == 0;
}

/* For SA_CALL_ARGS: do these arguments make the call thread-bound? */
int sa_call_thread_bound(long nr, const long a[6])
{
	switch (nr) {
	case SYS_getrusage:
		return a[0] == RUSAGE_THREAD;
	case SYS_clock_gettime: case SYS_clock_getres: case SYS_clock_nanosleep:
		return own_thread_clock(a[0]);
	case SYS_timer_create:
		return own_thread_clock(a[0]);
	case SYS_getpriority: case SYS_setpriority:
		return a[0] == 0 /* PRIO_PROCESS */ && a[1] == 0;
	case SYS_ioprio_get: case SYS_ioprio_set:
		return a[0] == 1 /* IOPRIO_WHO_PROCESS */ && a[1] == 0;
	case SYS_sched_setscheduler: case SYS_sched_getscheduler: case SYS_sched_setparam:
	case SYS_sched_getparam: case SYS_sched_setattr: case SYS_sched_getattr:
	case SYS_sched_rr_get_interval:
		return a[0] == 0;
	case SYS_perf_event_open:
		return a[1] == 0;
	case SYS_open: case SYS_readlink: case SYS_stat: case SYS_lstat: case SYS_access:
		return thread_self_path(a[0]);
	case SYS_openat: case SYS_openat2: case SYS_readlinkat: case SYS_newfstatat:
	case SYS_statx: case SYS_faccessat: case SYS_faccessat2:
		return thread_self_path(a[1]);
	}
	return sa_call_class(nr) == SA_CALL_THREAD || sa_call_class(nr) == SA_CALL_DIRECT;
}
