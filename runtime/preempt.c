/*
 * preempt.c - optional time slices (rt_config.quantum_us, RT_QUANTUM_US): a ticker thread and
 * a signal that ends a slice, as FreeBSD's KSE mailbox had km_quantum.
 *
 * Who is told. A VP's kernel thread changes whenever a call blocks (a claimer takes the VP and
 * wears its TLS), so a per-thread timer would have to follow it. Instead one ticker thread looks
 * at every VP once a quantum and sends the signal, with rt_tgsigqueueinfo, to the kernel thread
 * that runs the VP now (sa_runner_tid(): the shim's record, set at sa_create() and by every
 * claim). It sends
 * it when, at two looks a quantum apart or more, the same slice was running (vp->run_seq,
 * bumped by every switch), in user code (tm_sys even: not in rt_syscall()), the runner's CPU
 * time has grown by half a quantum since the first of them (a thread asleep in a direct system
 * call is left alone), and the VP has something else to run. A slice that has the CPU thus
 * lasts one to two quanta. The signal carries the slice's number: a signal that arrives after
 * the slice ended does nothing.
 *
 * Where the signal may switch. Anywhere the thread runs its own code, but nowhere else:
 *   - on the kernel thread that runs the thread: the interrupted stack pointer must lie in the
 *     running thread's stack. The signal may reach a kernel thread that no longer runs the VP
 *     (it executes a call in the background, or waits for a claim), or the VP's runner in the
 *     trap or the upcall handler, which run on other stacks;
 *   - outside the runtime: the thread's guard (nopreempt, raised by every rt_* call that takes
 *     a lock or switches, and by a thread that is switched out) must be 0;
 *   - outside every shared library: libc above all. User threads of a VP share its TLS, so
 *     glibc's per-thread state (malloc's tcache, stdio's lock owner) is theirs in common;
 *     switching inside malloc() and calling malloc() from the next thread would break the
 *     heap. The interrupted instruction must lie in the program's own code (its executable
 *     segments, found at rt_init). A fully static program cannot tell its libc from its own
 *     code: rt_init() then says ENOTSUP.
 * In the first case the signal does nothing; in the others it marks the slice (preempt_seq)
 * and the thread switches when its guard drops to 0 (rt_preempt_point); a thread in libc is
 * signalled again at the next look.
 *
 * The switch is made inside the handler, on the thread's stack: the kernel saved every
 * register, the flags and the whole FP/SSE state in the signal frame there, and the handler's
 * return (sigreturn) restores them whenever and wherever the thread is resumed. The handler
 * runs with SA_NODEFER, so the kernel thread's mask is the VP's while other threads run; on
 * resumption the frame is given the current kernel thread's mask and alternate stack, which
 * sigreturn would otherwise take from the kernel thread that was interrupted. A preempted
 * thread resumes on the same VP (its `stay` flag): it may hold the address of a TLS variable
 * in a register, and errno, saved by the handler, is put back in that same VP's TLS.
 */
#include <linux/futex.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <errno.h>
#include <link.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>
#include "rt-internal.h"

#define MAX_RANGES 8
static struct { uintptr_t lo, hi; } prog[MAX_RANGES]; /* the program's executable segments */
static int nprog;
static bool shared_libc;
static bool installed;
static pthread_t ticker_thread;
static uint32_t ticker_stop;

static bool in_program(uintptr_t pc)
{
	for (int i = 0; i < nprog; i++)
		if (pc - prog[i].lo < prog[i].hi - prog[i].lo)
			return true;
	return false;
}

/* The handler. Touches nothing of the VP's TLS (errno included) until it knows that this
 * kernel thread runs the VP: another may run it, wearing the same TLS block. */
static void on_preempt(int sig, siginfo_t *si, void *ucv)
{
	(void)sig;
	ucontext_t *uc = ucv;
	__atomic_fetch_add(&rt_g.preempt_kicks, 1, __ATOMIC_RELEASE);
	if (!__atomic_load_n(&rt_g.quantum_ns, __ATOMIC_RELAXED))
		return;
	struct rt_vp *vp = rt_vp_self();
	if (!vp)
		return;
	struct sa_thr_mailbox *tm = __atomic_load_n(&vp->mb.sa_curthread, __ATOMIC_ACQUIRE);
	if (!tm)
		return;
	struct rt_thread *t = rt_thread_of(tm);
	uintptr_t sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
	if (sp - (uintptr_t)t->stack.lo >= t->stack.size)
		return; /* not t's flow on this kernel thread */
	uint64_t seq = __atomic_load_n(&vp->run_seq, __ATOMIC_RELAXED);
	if (si->si_code == SI_QUEUE && (uint64_t)(uintptr_t)si->si_value.sival_ptr != seq)
		return; /* that slice is over */
	if (__atomic_load_n(&t->nopreempt, __ATOMIC_RELAXED) ||
	    !in_program((uintptr_t)uc->uc_mcontext.gregs[REG_RIP])) {
		__atomic_store_n(&vp->preempt_seq, seq, __ATOMIC_RELAXED);
		return;
	}
	int e = errno;
	rt_preempt_off(t);
	if (rt_preempt_switch(vp, t, false)) {
		uint64_t mask = 0;
		stack_t ss;
		syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &mask, sizeof mask);
		*(uint64_t *)&uc->uc_sigmask = mask; /* the kernel's 64 bits */
		if (syscall(SYS_sigaltstack, NULL, &ss) == 0)
			uc->uc_stack = ss;
	}
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	__atomic_store_n(&t->nopreempt, 0, __ATOMIC_RELAXED);
	errno = e;
}

/* A safe point: the running thread's guard dropped to 0 (rt_preempt_on). */
void rt_preempt_point(void)
{
	struct rt_vp *vp = rt_vp_self();
	struct rt_thread *t = vp ? vp->cur : NULL;
	if (!t || t->nopreempt)
		return;
	uint64_t p = __atomic_load_n(&vp->preempt_seq, __ATOMIC_RELAXED);
	if (!p || p != __atomic_load_n(&vp->run_seq, __ATOMIC_RELAXED))
		return;
	int e = errno;
	rt_preempt_off(t);
	rt_preempt_switch(vp, t, true);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	__atomic_store_n(&t->nopreempt, 0, __ATOMIC_RELAXED);
	errno = e;
}

static int collect(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	int *n = arg;
	if ((*n)++ == 0) {
		/* the first object is the program itself */
		for (int i = 0; i < info->dlpi_phnum && nprog < MAX_RANGES; i++) {
			const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
			if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
				prog[nprog].lo = info->dlpi_addr + ph->p_vaddr;
				prog[nprog].hi = prog[nprog].lo + ph->p_memsz;
				nprog++;
			}
		}
	} else if (info->dlpi_name && strstr(info->dlpi_name, "libc.so")) {
		shared_libc = true;
	}
	return 0;
}

/* Before the VPs start (under rt_init's lock): the program's code, and the handler. */
int rt_preempt_prepare(void)
{
	if (!nprog) {
		int n = 0;
		dl_iterate_phdr(collect, &n);
	}
	if (!nprog || !shared_libc)
		return ENOTSUP;
	if (!installed) {
		/* installed for good: a signal sent just before rt_shutdown() may still be
		   pending on a kernel thread, and the default action would end the process */
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_sigaction = on_preempt;
		sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_NODEFER;
		sigemptyset(&sa.sa_mask);
		if (sigaction(RT_PREEMPT_SIG, &sa, NULL) != 0)
			return errno;
		installed = true;
	}
	return 0;
}

/* In each VP's first kernel thread, before sa_create(): the VP's mask is the creator's, which
 * may block everything (as docs/design.md advises); the preemption signal must get through. */
void rt_preempt_unblock(void)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, RT_PREEMPT_SIG);
	pthread_sigmask(SIG_UNBLOCK, &s, NULL);
}

/* CPU time of kernel thread `tid` of this process (the kernel's MAKE_THREAD_CPUCLOCK). */
static uint64_t thread_cpu_ns(int32_t tid)
{
	clockid_t clk = (clockid_t)((~(unsigned)tid << 3) | 6);
	struct timespec ts;
	if (clock_gettime(clk, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void look(struct rt_vp *vp, pid_t pid, uint64_t now, uint64_t q)
{
	uint64_t seq = __atomic_load_n(&vp->run_seq, __ATOMIC_RELAXED);
	int32_t tid = sa_runner_tid(&vp->mb); /* changes at every claim */
	struct sa_thr_mailbox *tm = __atomic_load_n(&vp->mb.sa_curthread, __ATOMIC_ACQUIRE);
	if (!tm || !tid) {
		vp->tick_seq = 0;
		return;
	}
	uint64_t cpu = thread_cpu_ns(tid);
	if (seq != vp->tick_seq || tid != vp->tick_tid) {
		vp->tick_seq = seq;
		vp->tick_tid = tid;
		vp->tick_cpu_ns = cpu;
		__atomic_store_n(&vp->tick_seen_ns, now, __ATOMIC_RELAXED);
		return;
	}
	/* CPU time since the first look at this slice, not per look: a runner that gets only a
	   share of a CPU (more VPs than CPUs) must still reach the mark */
	if (cpu - vp->tick_cpu_ns < q / 2 || (__atomic_load_n(&tm->tm_sys, __ATOMIC_ACQUIRE) & 1) ||
	    !rt_vp_has_work(vp))
		return;
	siginfo_t si;
	memset(&si, 0, sizeof si);
	si.si_signo = RT_PREEMPT_SIG;
	si.si_code = SI_QUEUE;
	si.si_pid = pid;
	si.si_uid = getuid();
	si.si_value.sival_ptr = (void *)(uintptr_t)seq;
	if (syscall(SYS_rt_tgsigqueueinfo, pid, tid, RT_PREEMPT_SIG, &si) == 0)
		RT_STAT(vp, preempt_signals); /* the ticker is this counter's only writer */
}

static void *ticker(void *arg)
{
	(void)arg;
	pid_t pid = getpid();
	uint64_t q = rt_g.quantum_ns;
	/* the kernel may otherwise stretch each sleep by 50 us: a quarter of a 200 us quantum */
	prctl(PR_SET_TIMERSLACK, 1000ul, 0, 0, 0);
	struct timespec ts = { (time_t)(q / 1000000000u), (long)(q % 1000000000u) };
	while (!__atomic_load_n(&ticker_stop, __ATOMIC_ACQUIRE)) {
		syscall(SYS_futex, &ticker_stop, FUTEX_WAIT_PRIVATE, 0, &ts, NULL, 0);
		uint64_t now = rt_now_ns();
		for (int i = 0; i < rt_g.nvp && !__atomic_load_n(&ticker_stop, __ATOMIC_ACQUIRE); i++)
			look(rt_g.vps[i], pid, now, q);
	}
	return NULL;
}

/* After the VPs are up. The ticker takes no signal: the program's go to its own threads. */
int rt_preempt_start(void)
{
	for (int i = 0; i < rt_g.nvp; i++) {
		rt_g.vps[i]->tick_seq = 0;
		rt_g.vps[i]->tick_tid = 0;
	}
	__atomic_store_n(&ticker_stop, 0, __ATOMIC_RELAXED);
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int e = pthread_create(&ticker_thread, NULL, ticker, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return e;
}

void rt_preempt_stop(void)
{
	__atomic_store_n(&ticker_stop, 1, __ATOMIC_RELEASE);
	syscall(SYS_futex, &ticker_stop, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	pthread_join(ticker_thread, NULL);
}
