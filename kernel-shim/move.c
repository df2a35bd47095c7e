/*
 * move.c - the moved-call direction: the probe and eager detectors know before the call
 * blocks, so the *call* goes to a spare activation and the user context stays where it is,
 * identity untouched. The runner then upcalls SA_BLOCKED itself, as the kernel would have.
 */
#include <sys/syscall.h>
#include <fcntl.h>
#include <errno.h>
#include "ks.h"

struct move {
	struct ks_vp *vp;
	struct sa_thr_mailbox *m;
	struct ks_act *spare;
	int by;
};

static void run_moved_call(struct ks_act *act, void *arg);

/* Runs on the upcall stack, the caller's context saved in m->tm_context. */
static void move_and_upcall(void *arg)
{
	struct move *mv = arg;
	struct ks_vp *vp = mv->vp;
	struct sa_thr_mailbox *m = mv->m;
	mv->spare->ks_vp = vp;
	ks_act_give(mv->spare, run_moved_call, m);
	KS_COUNT(moved);
	ks_count_handoff(vp, mv->by);
	ks_upcall_blocked(vp, m, mv->by, true);
}

/*
 * A call that blocked in the kernel holds the files it was given; a moved call runs later, when
 * the caller may have closed the descriptor or made it name another file (dup2). So the
 * descriptors a moved call uses for I/O are duplicated before the caller goes on (the duplicate
 * shares the open file description: offset, flags, locks) and closed when the call is over.
 * Which arguments are such descriptors (bit i: argument i). Calls that act on the descriptor
 * itself rather than on its file (close, dup*, fcntl, ioctl's FIOCLEX) are not listed; nor are
 * the *at calls, whose first argument is usually AT_FDCWD.
 */
static unsigned io_fds(long nr)
{
	switch (nr) {
	case SYS_read: case SYS_write: case SYS_pread64: case SYS_pwrite64: case SYS_readv:
	case SYS_writev: case SYS_preadv: case SYS_pwritev: case SYS_preadv2: case SYS_pwritev2:
	case SYS_fsync: case SYS_fdatasync: case SYS_sync_file_range: case SYS_fallocate:
	case SYS_ftruncate: case SYS_fstat: case SYS_fstatfs: case SYS_getdents64: case SYS_lseek:
	case SYS_flock: case SYS_sendto: case SYS_recvfrom: case SYS_sendmsg: case SYS_recvmsg:
	case SYS_sendmmsg: case SYS_recvmmsg: case SYS_accept: case SYS_accept4: case SYS_connect:
	case SYS_shutdown: case SYS_epoll_wait: case SYS_epoll_pwait: case SYS_epoll_pwait2:
	case SYS_fadvise64: case SYS_readahead: case SYS_syncfs: case SYS_fchmod: case SYS_fchown:
	case SYS_fgetxattr: case SYS_fsetxattr: case SYS_flistxattr: case SYS_fremovexattr:
		return 1u << 0;
	case SYS_sendfile:
		return (1u << 0) | (1u << 1);
	case SYS_splice: case SYS_copy_file_range:
		return (1u << 0) | (1u << 2);
	case SYS_tee:
		return (1u << 0) | (1u << 1);
	}
	return 0;
}

/* Duplicate the call's descriptors into m->tm_args; what could not be duplicated (not open:
 * the call fails with EBADF as it would have; or no descriptor left) keeps its number. */
static void hold_files(struct sa_thr_mailbox *m)
{
	unsigned fds = io_fds(m->tm_nr);
	m->tm_dupfds = 0;
	for (int i = 0; fds; i++, fds >>= 1) {
		if (!(fds & 1) || m->tm_args[i] < 0 || m->tm_args[i] > INT32_MAX)
			continue;
		long d = ks_raw_syscall6(SYS_fcntl, m->tm_args[i], F_DUPFD_CLOEXEC, 0, 0, 0, 0);
		if (d >= 0) {
			m->tm_args[i] = d;
			m->tm_dupfds |= 1u << i;
		}
	}
}

static void release_files(struct sa_thr_mailbox *m)
{
	for (int i = 0; i < 6; i++)
		if (m->tm_dupfds & (1u << i))
			ks_raw_syscall6(SYS_close, m->tm_args[i], 0, 0, 0, 0, 0);
	m->tm_dupfds = 0;
}

/* A spare for a moved call. An empty pool is refilled by the spawner, off this path; the call
 * waits for it rather than run synchronously, unless no spare can come at all. */
static struct ks_act *take_spare(void)
{
	struct ks_act *spare;
	while (!(spare = ks_act_take()) && !ks_act_exhausted())
		ks_raw_syscall6(SYS_sched_yield, 0, 0, 0, 0, 0, 0);
	return spare;
}

/* Give the call to a spare and upcall SA_BLOCKED; returns (raw) what the upcall handler resumes
 * the caller with. With no spare to be had, or upcalls off, the call runs here, synchronously. */
long ks_move_call(struct ks_vp *vp, long nr, const long args[6], int by, long prefix)
{
	struct sa_mailbox *mb = vp->ks_mbox;
	struct sa_thr_mailbox *m = mb->sa_curthread;
	struct ks_act *spare = NULL;

	if (!(__atomic_load_n(&mb->sa_flags, __ATOMIC_RELAXED) & SA_NOUPCALL))
		spare = take_spare();
	if (!spare) {
		KS_COUNT(sync_fallback);
		__atomic_fetch_add(&mb->sa_nsync, 1, __ATOMIC_RELAXED);
		long raw = ks_raw_syscall6(nr, args[0], args[1], args[2], args[3], args[4], args[5]);
		return ks_with_prefix(raw, prefix);
	}
	m->tm_nr = nr;
	for (int i = 0; i < 6; i++)
		m->tm_args[i] = args[i];
	hold_files(m);
	m->tm_prefix = prefix;
	m->tm_act = spare;
	__atomic_store_n(&m->tm_cstate, SA_CALL_QUEUED, __ATOMIC_RELEASE);
	/* the struct lives on this stack, which stays untouched until the context is resumed */
	struct move mv = { vp, m, spare, by };
	uintptr_t top = ((uintptr_t)mb->sa_stack + mb->sa_stacksize) & ~(uintptr_t)15;
	ks_stack_clean(mb->sa_stack, mb->sa_stacksize);
	return ks_save_and_run(&m->tm_context, move_and_upcall, &mv, (void *)top);
}

/* On the spare: run the call unless it was cancelled first, then complete it. */
static void run_moved_call(struct ks_act *act, void *arg)
{
	struct sa_thr_mailbox *m = arg;
	struct ks_vp *vp = act->ks_vp;
	int st = SA_CALL_QUEUED;
	long raw;
	act->ks_role = KS_BLOCKED;
	if (__atomic_compare_exchange_n(&m->tm_cstate, &st, SA_CALL_RUNNING, false,
					__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		raw = ks_cancellable_syscall(m);
	else
		raw = -ECANCELED;
	release_files(m); /* before the completion: m is the caller's again after it */
	ks_complete(vp, m, raw);
}
