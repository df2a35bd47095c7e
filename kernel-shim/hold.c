/*
 * hold.c - the files of a moved call, held outside the program's descriptor table.
 *
 * A call that blocks in the kernel took its files when it entered: the caller may close the
 * descriptor or dup2() another file over it, the call goes on with the file it was given. A
 * moved call (move.c) runs later, on another kernel thread, so it must take its files before
 * the caller goes on. It must not take them as a new descriptor of the process's table: the
 * duplicate would hold a number (the program's next open() gets a higher one; EMFILE with the
 * table full), and closing it when the call is over would drop the process's POSIX record
 * locks on the file (their owner is the descriptor table: closing any descriptor of a file
 * drops every lock that table holds on it).
 *
 * So calls whose descriptors name the file they do I/O on run on movers: activations born with
 * a private descriptor table of their own, emptied at birth (close_range with
 * CLOSE_RANGE_UNSHARE), which run nothing but such calls. The caller posts the call to a mover
 * and waits while the mover copies the call's files from the caller's thread into its own
 * table (pidfd_getfd(); a thread of the same thread group may always do that); the call then
 * runs on those copies, and closing them afterwards touches neither a number nor a lock of the
 * process. The wait is short when the mover is awake (movers are taken newest first and spin
 * a while before they sleep); one asleep must first be woken, a cross-CPU wakeup that the
 * caller then waits for (docs/reliability.md has the figures).
 *
 * Calls whose result or effect is a descriptor of the process's table, or that name other
 * descriptors in their memory (accept, sendmsg and recvmsg with SCM_RIGHTS, and every call not
 * listed in io_fds()) run on ordinary activations with the caller's numbers, unchanged.
 */
#include <sys/syscall.h>
#include <linux/close_range.h>
#include <fcntl.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "ks.h"

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL /* pidfd_open(): the pidfd of one thread (Linux 6.9) */
#endif

/* TAKE_NOFILE: pidfd_getfd() said EBADF (the descriptor is not open; or a kernel that does not
 * give O_PATH descriptors, which fstat accepts): the call runs on an ordinary spare with the
 * caller's numbers instead, and the kernel judges the descriptor as it would have */
enum { TAKE_NONE, TAKE_OK, TAKE_FAILED, TAKE_NOFILE };

struct mover {
	struct ks_act act;          /* first: the rest of the shim sees an activation */
	uint32_t go;                /* futex: the caller posted a call whose files to take */
	uint32_t go_sleeping;       /* the mover sleeps on `go` */
	uint32_t taken;             /* futex: a TAKE_ result, for the caller */
	uint32_t taken_sleeping;    /* the caller sleeps on `taken` */
	uint32_t born;              /* futex: 1 ready, 2 its table could not be made private */
	struct sa_thr_mailbox *m;   /* the call posted */
	unsigned want;              /* its arguments that are descriptors to take (bit i: i) */
	pid_t caller;               /* the caller's thread */
	int pidfd;                  /* a pidfd of pidfd_tid in this mover's table, or -1 */
	pid_t pidfd_tid;
	int notify;                 /* a copy of the VP's completion eventfd at its number, or -1 */
	bool skip_pool;             /* born for a caller that gives it a call at once */
	struct mover *next;         /* in the pool */
};

static pthread_mutex_t movers_lock = PTHREAD_MUTEX_INITIALIZER;
/* Held while a mover is being created, and by fork(): as act.c's, so that no child is forked in
 * the middle of pthread_create() with the creator's locks held. */
static pthread_mutex_t create_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mover *movers; /* LIFO: the newest parked is the likeliest to be spinning */
static unsigned long movers_parked;
static bool hold_broken;      /* the kernel cannot give a thread another's file (ENOSYS) */
static __thread struct mover *self_mover;

/*
 * The arguments (bit i: argument i) that name the file a call does its I/O on, and that a
 * mover may take. Not listed: calls on the descriptor itself rather than its file (close,
 * dup*, fcntl: record locks belong to the process's table), calls that make descriptors
 * (accept*, recvmsg and recvmmsg may receive SCM_RIGHTS), sendmsg and sendmmsg (SCM_RIGHTS
 * names descriptors of the caller's table), and the *at calls (usually AT_FDCWD).
 */
static unsigned io_fds(long nr)
{
	switch (nr) {
	case SYS_read: case SYS_write: case SYS_pread64: case SYS_pwrite64: case SYS_readv:
	case SYS_writev: case SYS_preadv: case SYS_pwritev: case SYS_preadv2: case SYS_pwritev2:
	case SYS_fsync: case SYS_fdatasync: case SYS_sync_file_range: case SYS_fallocate:
	case SYS_ftruncate: case SYS_fstat: case SYS_fstatfs: case SYS_getdents64: case SYS_lseek:
	case SYS_flock: case SYS_sendto: case SYS_recvfrom: case SYS_connect: case SYS_shutdown:
	case SYS_epoll_wait: case SYS_epoll_pwait: case SYS_epoll_pwait2: case SYS_fadvise64:
	case SYS_readahead: case SYS_syncfs: case SYS_fchmod: case SYS_fchown: case SYS_fgetxattr:
	case SYS_fsetxattr: case SYS_flistxattr: case SYS_fremovexattr:
		return 1u << 0;
	case SYS_sendfile: case SYS_tee:
		return (1u << 0) | (1u << 1);
	case SYS_splice: case SYS_copy_file_range:
		return (1u << 0) | (1u << 2);
	}
	return 0;
}

/* Spin (if `spin`), then sleep, until *word is not 0; take it (back to 0) and return it. */
static uint32_t wait_word(uint32_t *word, uint32_t *sleeping, bool spin)
{
	uint64_t until = spin ? ks_now_ns() + KS_SPIN_NS : 0;
	uint32_t v;
	while (!(v = __atomic_load_n(word, __ATOMIC_ACQUIRE))) {
		if (ks_now_ns() < until) {
			ks_spin_pause();
			continue;
		}
		__atomic_store_n(sleeping, 1, __ATOMIC_SEQ_CST);
		if (!__atomic_load_n(word, __ATOMIC_SEQ_CST))
			ks_futex_wait(word, 0, NULL);
		__atomic_store_n(sleeping, 0, __ATOMIC_RELAXED);
	}
	__atomic_store_n(word, 0, __ATOMIC_RELAXED);
	return v;
}

/* Set *word to v and wake its waiter if it sleeps; whether it did. */
static bool post_word(uint32_t *word, uint32_t v, uint32_t *sleeping)
{
	__atomic_store_n(word, v, __ATOMIC_SEQ_CST);
	if (!__atomic_load_n(sleeping, __ATOMIC_SEQ_CST))
		return false;
	ks_futex_wake(word, 1);
	return true;
}

/* A pidfd of the caller's thread in this mover's table (kept for the next call of the same
 * thread), or of the process where the kernel has no thread pidfds; -errno. */
static int caller_pidfd(struct mover *mv)
{
	if (mv->pidfd >= 0 && mv->pidfd_tid == mv->caller)
		return mv->pidfd;
	if (mv->pidfd >= 0)
		ks_raw_syscall6(SYS_close, mv->pidfd, 0, 0, 0, 0, 0);
	mv->pidfd = -1;
	long fd = ks_raw_syscall6(SYS_pidfd_open, mv->caller, PIDFD_THREAD, 0, 0, 0, 0);
	if (fd == -EINVAL) /* before Linux 6.9: the process's, whose leader shares the table */
		fd = ks_raw_syscall6(SYS_pidfd_open, getpid(), 0, 0, 0, 0, 0);
	if (fd < 0)
		return (int)fd;
	mv->pidfd = (int)fd;
	mv->pidfd_tid = mv->caller;
	return mv->pidfd;
}

/* A copy of the caller's descriptor `fd` in this mover's table: its number, or -errno. */
static long copy_in(struct mover *mv, long fd)
{
	int pidfd = caller_pidfd(mv);
	if (pidfd < 0)
		return pidfd;
	long got = ks_raw_syscall6(SYS_pidfd_getfd, pidfd, fd, 0, 0, 0, 0);
	if (got != -ESRCH)
		return got;
	/* the thread of the kept pidfd has ended, and a new one has its tid */
	mv->pidfd_tid = 0;
	pidfd = caller_pidfd(mv);
	return pidfd < 0 ? pidfd : ks_raw_syscall6(SYS_pidfd_getfd, pidfd, fd, 0, 0, 0, 0);
}

static void close_taken(struct sa_thr_mailbox *m)
{
	for (int i = 0; i < 6; i++)
		if (m->tm_dupfds & (1u << i))
			ks_raw_syscall6(SYS_close, m->tm_args[i], 0, 0, 0, 0, 0);
	m->tm_dupfds = 0;
}

/* On the mover, while the caller waits: put copies of the call's files in its arguments. */
static uint32_t take(struct mover *mv)
{
	struct sa_thr_mailbox *m = mv->m;
	long orig[6];
	memcpy(orig, m->tm_args, sizeof orig);
	for (int i = 0; i < 6; i++) {
		if (!(mv->want & (1u << i)))
			continue;
		/* the kernel reads a descriptor argument as 32 bits */
		long fd = (int)(uint32_t)m->tm_args[i];
		long got = copy_in(mv, fd);
		if (got >= 0) {
			m->tm_args[i] = got;
			m->tm_dupfds |= 1u << i;
			continue;
		}
		if (got == -ENOSYS)
			__atomic_store_n(&hold_broken, true, __ATOMIC_RELAXED);
		close_taken(m);
		memcpy(m->tm_args, orig, sizeof orig);
		return got == -EBADF ? TAKE_NOFILE : TAKE_FAILED;
	}
	return TAKE_OK;
}

static void mover_put(struct mover *mv)
{
	mv->act.ks_role = KS_SPARE;
	mv->act.ks_vp = NULL;
	pthread_mutex_lock(&movers_lock);
	mv->next = movers;
	movers = mv;
	movers_parked++;
	pthread_mutex_unlock(&movers_lock);
}

static void *mover_main(void *arg)
{
	struct mover *mv = arg;
	/* an empty table of its own: a copy of the process's would keep every file open */
	long rc = ks_raw_syscall6(SYS_close_range, 0, ~0U, CLOSE_RANGE_UNSHARE, 0, 0, 0);
	self_mover = mv;
	mv->act.ks_fs = ks_get_fs();
	mv->act.ks_spin = ks_may_spin();
	mv->act.ks_tid = (pid_t)ks_raw_syscall6(SYS_gettid, 0, 0, 0, 0, 0, 0);
	if (rc == 0)
		__atomic_fetch_add(&ks_stat.activations, 1, __ATOMIC_RELAXED);
	post_word(&mv->born, rc == 0 ? 1 : 2, &mv->taken_sleeping);
	if (rc != 0)
		return NULL; /* it never ran a call: it may leave through glibc */
	for (;;) {
		if (!mv->skip_pool)
			mover_put(mv);
		mv->skip_pool = false;
		wait_word(&mv->go, &mv->go_sleeping, mv->act.ks_spin);
		uint32_t r = take(mv);
		post_word(&mv->taken, r, &mv->taken_sleeping);
		if (r != TAKE_OK)
			continue;
		wait_word(&mv->act.ks_wake, &mv->act.ks_sleeping, mv->act.ks_spin);
		mv->act.ks_fn(&mv->act, mv->act.ks_arg); /* the moved call: returns once completed */
	}
}

static void movers_atfork_prepare(void)
{
	pthread_mutex_lock(&create_lock);
	pthread_mutex_lock(&movers_lock);
}

static void movers_atfork_parent(void)
{
	pthread_mutex_unlock(&movers_lock);
	pthread_mutex_unlock(&create_lock);
}

/* The child has none of the parent's movers (their structs are left to the parent's copy). */
static void movers_atfork_child(void)
{
	pthread_mutex_init(&movers_lock, NULL);
	pthread_mutex_init(&create_lock, NULL);
	movers = NULL;
	movers_parked = 0;
}

static void movers_init(void)
{
	pthread_atfork(movers_atfork_prepare, movers_atfork_parent, movers_atfork_child);
}

/* A new mover, born like every activation with all signals blocked but the cancel signal. */
static struct mover *mover_create(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, movers_init);
	if (!ks_act_may_create())
		return NULL;
	struct mover *mv = aligned_alloc(_Alignof(struct mover), sizeof *mv);
	if (!mv)
		return NULL;
	memset(mv, 0, sizeof *mv);
	mv->act.ks_perf_fd = -1;
	mv->pidfd = -1;
	mv->notify = -1;
	mv->skip_pool = true; /* its creator gives it a call at once */
	pthread_attr_t attr;
	sigset_t all, old;
	pthread_t t;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, KS_KSTACK_SIZE); /* it runs calls and completions here */
	sigfillset(&all);
	sigdelset(&all, KS_SIG_CANCEL);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_mutex_lock(&create_lock);
	int rc = pthread_create(&t, &attr, mover_main, mv);
	/* its tid must be known before anyone routes a cancel signal to it */
	uint32_t born = rc == 0 ? wait_word(&mv->born, &mv->taken_sleeping, false) : 0;
	pthread_mutex_unlock(&create_lock);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		free(mv);
		return NULL;
	}
	if (born != 1) {
		/* no private tables here (before Linux 5.9); the small struct is left behind, as
		   the thread may still be touching it */
		__atomic_store_n(&hold_broken, true, __ATOMIC_RELAXED);
		return NULL;
	}
	return mv;
}

/* The pool's newest mover, or a new one; NULL at the limit or where movers cannot work. */
static struct mover *mover_get(void)
{
	if (__atomic_load_n(&hold_broken, __ATOMIC_RELAXED))
		return NULL;
	pthread_mutex_lock(&movers_lock);
	struct mover *mv = movers;
	if (mv) {
		movers = mv->next;
		movers_parked--;
	}
	pthread_mutex_unlock(&movers_lock);
	return mv ? mv : mover_create();
}

bool ks_hold_applies(long nr)
{
	return io_fds(nr) != 0;
}

struct ks_act *ks_hold_take(struct ks_vp *vp, struct sa_thr_mailbox *m)
{
	m->tm_dupfds = 0;
	unsigned want = io_fds(m->tm_nr);
	if (!want)
		return ks_act_wait_take();
	struct mover *mv = mover_get();
	if (!mv)
		/* where movers cannot work (no pidfd_getfd: Linux before 5.6, or a tool that does
		   not know the call), an ordinary spare with the caller's numbers, as for the calls
		   not held: the file is the one the number names when the moved call starts */
		return __atomic_load_n(&hold_broken, __ATOMIC_RELAXED) ? ks_act_wait_take() : NULL;
	mv->m = m;
	mv->want = want;
	mv->caller = vp->ks_runner->ks_tid;
	/* a mover that slept is woken on this CPU the sooner if the caller sleeps at once */
	bool woke = post_word(&mv->go, 1, &mv->go_sleeping);
	uint32_t r = wait_word(&mv->taken, &mv->taken_sleeping, vp->ks_runner->ks_spin && !woke);
	if (r == TAKE_OK)
		return &mv->act;
	/* the mover went back to its pool */
	return r == TAKE_NOFILE || __atomic_load_n(&hold_broken, __ATOMIC_RELAXED)
		? ks_act_wait_take() : NULL;
}

/* Make the number ks_complete() writes the VP's eventfd to name that eventfd in this mover's
 * table too (where nothing of the process is otherwise). A copy is kept until the next call:
 * closing it after the completion has no hook. */
static void notify_in_table(struct mover *mv, struct sa_mailbox *mb)
{
	if (mv->notify >= 0)
		ks_raw_syscall6(SYS_close, mv->notify, 0, 0, 0, 0, 0);
	mv->notify = -1;
	if (!(__atomic_load_n(&mb->sa_flags, __ATOMIC_ACQUIRE) & SA_NOTIFY))
		return;
	int want = mb->sa_notify_fd;
	if (want < 0)
		return;
	if (want == mv->pidfd) { /* move the pidfd out of the way */
		long p = ks_raw_syscall6(SYS_fcntl, mv->pidfd, F_DUPFD_CLOEXEC, want + 1, 0, 0, 0);
		ks_raw_syscall6(SYS_close, mv->pidfd, 0, 0, 0, 0, 0);
		mv->pidfd = p >= 0 ? (int)p : -1;
	}
	long got = copy_in(mv, want);
	if (got == -ESRCH) { /* the caller's thread has ended since: ask through another */
		mv->caller = getpid();
		got = copy_in(mv, want);
	}
	if (got < 0)
		return;
	if (got != want) {
		ks_raw_syscall6(SYS_dup3, got, want, O_CLOEXEC, 0, 0, 0);
		ks_raw_syscall6(SYS_close, got, 0, 0, 0, 0, 0);
	}
	mv->notify = want;
}

void ks_hold_release(struct ks_act *act, struct sa_thr_mailbox *m)
{
	struct mover *mv = self_mover;
	close_taken(m);
	if (mv && act == &mv->act)
		notify_in_table(mv, act->ks_vp->ks_mbox);
}

unsigned long ks_hold_parked(void)
{
	pthread_mutex_lock(&movers_lock);
	unsigned long n = movers_parked;
	pthread_mutex_unlock(&movers_lock);
	return n;
}
