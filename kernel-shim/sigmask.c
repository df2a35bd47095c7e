/*
 * sigmask.c - the user context's signal mask, kept where a claimer can read it.
 *
 * The signal mask is part of a thread's identity: the activation that resumes a blocked flow's
 * user context must wear the mask the flow had. Linux lets a thread read only its own mask;
 * another thread's is in /proc/PID/task/TID/status, 12-19 us to read here and worse where
 * system calls are dear: too slow for the path between a block and the upcall. So, as FreeBSD's
 * KSE library kept its threads' masks in user space, the mask is recorded in the user
 * context's TLS (ks_umask) whenever it changes, and a claimer reads it there by address.
 *
 * It changes through pthread_sigmask() and sigprocmask(), which this library wraps (the calls go
 * on to the next definition, glibc's or a sanitizer's); through rt_sigprocmask made with
 * laio_syscall() or sa_syscall(); and out of sight (siglongjmp, setcontext, a raw system call),
 * which the runner catches up with at its next release (sa_release, laio_poll). The blocked
 * activation checks the mask the claimer applied against its own when its call returns and
 * counts a difference (sa_counters.mask_stale). Temporary masks (ppoll, pselect, epoll_pwait,
 * a signal handler's) are the kernel's and are never recorded.
 */
#include <sys/syscall.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "ks.h"

__thread uint64_t ks_umask __attribute__((tls_model("initial-exec")));
static long umask_off; /* &ks_umask - the TLS base: the same in every thread (initial-exec) */

typedef int mask_fn(int how, const sigset_t *set, sigset_t *old);
static mask_fn *next_pthread_sigmask, *next_sigprocmask;

/* Signals no mask can hold: SIGKILL, SIGSTOP, and glibc's two internal ones (32, 33). */
#define UNBLOCKABLE ((1ull << (SIGKILL - 1)) | (1ull << (SIGSTOP - 1)) | (1ull << 31) | (1ull << 32))

static uint64_t word(const sigset_t *set)
{
	return *(const uint64_t *)set; /* glibc's sigset_t starts with the kernel's 64 bits */
}

__attribute__((constructor)) static void resolve(void)
{
	if (!next_pthread_sigmask)
		next_pthread_sigmask = (mask_fn *)dlsym(RTLD_NEXT, "pthread_sigmask");
	if (!next_sigprocmask)
		next_sigprocmask = (mask_fn *)dlsym(RTLD_NEXT, "sigprocmask");
}

void ks_umask_init(void)
{
	umask_off = (long)((char *)&ks_umask - (char *)ks_get_fs());
	ks_umask_refresh();
}

/* The recorded mask of the user context whose TLS base is `fs`. */
uint64_t ks_umask_of(uint64_t fs)
{
	return __atomic_load_n((uint64_t *)(fs + (uint64_t)umask_off), __ATOMIC_RELAXED);
}

/* Record the calling thread's mask as the kernel has it now. Leaves errno alone. */
void ks_umask_refresh(void)
{
	uint64_t m = 0;
	ks_raw_syscall6(SYS_rt_sigprocmask, SIG_BLOCK, 0, (long)&m, sizeof m, 0, 0);
	__atomic_store_n(&ks_umask, m, __ATOMIC_RELAXED);
}

/* The mask after a successful change from `old` by (how, set). */
static void note(int how, const sigset_t *set, const sigset_t *old)
{
	uint64_t m = word(old);
	if (set) {
		uint64_t s = word(set);
		m = how == SIG_BLOCK ? m | s : how == SIG_UNBLOCK ? m & ~s : s;
	}
	__atomic_store_n(&ks_umask, m & ~UNBLOCKABLE, __ATOMIC_RELAXED);
}

/* Without a next definition (a fully static program has no dlsym): the system call, with
 * glibc's rule that its two internal signals are never blocked. Returns 0 or an errno. */
static int direct(int how, const sigset_t *set, sigset_t *old)
{
	uint64_t s = set ? word(set) & ~((1ull << 31) | (1ull << 32)) : 0;
	long r = ks_raw_syscall6(SYS_rt_sigprocmask, how, set ? (long)&s : 0, (long)old, 8, 0, 0);
	return r < 0 ? (int)-r : 0;
}

/* Call the next definition of a mask function (or the system call), and record the mask it
 * leaves. Returns 0 or an errno value. */
static int change(mask_fn *fn, bool returns_errno, int how, const sigset_t *set, sigset_t *old)
{
	/* no sigemptyset()/memcpy(): a sanitizer intercepts those, and this frame may lie on an
	   activation's stack that the sanitizer has seen under another thread's identity; as the
	   kernel does, only the first 64 bits of a sigset_t are read and written */
	sigset_t o;
	int err;
	*(uint64_t *)&o = 0;
	if (!fn)
		err = direct(how, set, &o);
	else if (returns_errno)
		err = fn(how, set, &o);
	else
		err = fn(how, set, &o) == 0 ? 0 : errno;
	if (err == 0) {
		note(how, set, &o);
		if (old)
			*(uint64_t *)old = word(&o);
	}
	return err;
}

/* Exported without a symbol version (liblaio.map does not name them): a versioned definition
 * would not stand in for other libraries' references to glibc's versioned symbols. */
#define INTERPOSE __attribute__((visibility("default")))

INTERPOSE int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
	if (!next_pthread_sigmask)
		resolve();
	return change(next_pthread_sigmask, true, how, set, old);
}

INTERPOSE int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
	if (!next_sigprocmask)
		resolve();
	int err = change(next_sigprocmask, false, how, set, old);
	if (err) {
		errno = err;
		return -1;
	}
	return 0;
}

/* The signals pending for this kernel thread alone (not the process's): /proc's SigPnd. */
static uint64_t private_pending(void)
{
	char buf[2048];
	unsigned long long v = 0;
	int fd = (int)ks_raw_syscall6(SYS_open, (long)"/proc/thread-self/status", O_RDONLY | O_CLOEXEC,
				      0, 0, 0, 0);
	if (fd < 0)
		return 0;
	long n = ks_raw_syscall6(SYS_read, fd, (long)buf, sizeof buf - 1, 0, 0, 0);
	ks_raw_syscall6(SYS_close, fd, 0, 0, 0, 0, 0);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	const char *p = strstr(buf, "\nSigPnd:");
	return p && sscanf(p + 8, "%llx", &v) == 1 ? v : 0;
}

/* Take signal `sig` pending here and send it, with what it carried, to kernel thread `tid`. The
 * kernel keeps si_code SI_TKILL and si_code >= 0 (tgkill, pthread_kill, the kernel's own) for
 * the sender's own thread: those go again with tgkill, from this process. */
static void forward(int sig, pid_t tid)
{
	uint64_t one = KS_SIGBIT(sig);
	struct timespec zero = { 0, 0 };
	siginfo_t si;
	while (ks_raw_syscall6(SYS_rt_sigtimedwait, (long)&one, (long)&si, (long)&zero, 8, 0, 0) ==
	       sig) {
		if (tid <= 0)
			continue; /* the flow's thread is gone: so is its signal */
		if (ks_raw_syscall6(SYS_rt_tgsigqueueinfo, getpid(), tid, sig, (long)&si, 0, 0) != 0)
			ks_raw_syscall6(SYS_tgkill, getpid(), tid, sig, 0, 0, 0);
	}
}

/* T6, a blocked activation whose call has returned, before it takes the spares' mask: a signal
 * sent to the flow's thread before its call went to the background is still pending here,
 * blocked by the flow's mask. As a spare this kernel thread would hold it for good (or deliver
 * it to some other flow it runs later): it goes to the kernel thread that runs the VP now. One
 * system call when nothing is pending, the common case. */
void ks_carry_pending(struct ks_vp *vp)
{
	uint64_t any = 0;
	if (ks_raw_syscall6(SYS_rt_sigpending, (long)&any, 8, 0, 0, 0, 0) != 0 || !any)
		return;
	uint64_t mine = private_pending() & ~(KS_SIGBIT(KS_SIG_CANCEL) | KS_SIGBIT(KS_SIG_UPCALL));
	if (!mine)
		return;
	struct ks_act *runner = __atomic_load_n(&vp->ks_runner, __ATOMIC_ACQUIRE);
	pid_t tid = vp->ks_dead || !runner ? 0 : runner->ks_tid;
	for (int sig = 1; sig <= 64; sig++)
		if (mine & KS_SIGBIT(sig))
			forward(sig, tid);
}
