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
 * One request at a time. While the runner is kept off the CPU (a real-time thread of higher
 * priority, a host that descheduled the vCPU) every look would find the same overrun and send
 * again; real-time signals queue, and the handler runs with SA_NODEFER, so on its next return
 * to user mode the kernel would stack all of them on the thread's stack at once, one frame of a
 * few KiB each, into the guard page. So a VP has at most one request outstanding
 * (vp->preempt_req): the ticker sends only when none is, and the handler, wherever it lands,
 * retires the request it carries first thing. A request sent to a kernel thread that has since
 * stopped running the VP is given up when the ticker sees another runner: that thread blocks the
 * signal (a spare) or takes it on a stack where it does nothing, once.
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
static void on_preempt(int sig, siginfo_t *si, void *ucv);

/* A request names its slice (the low bits of run_seq) and, above them, a number of its own and
 * its VP's: the handler retires only the request it carries, never a newer one or another VP's
 * (the kernel thread it reaches may run another VP by then). */
#define REQ_SEQ_BITS 40
#define REQ_SEQ_MASK ((1ull << REQ_SEQ_BITS) - 1)

static uint64_t request_value(struct rt_vp *vp, uint64_t seq)
{
	vp->preempt_req_no = vp->preempt_req_no % 0xffffu + 1; /* never 0 */
	return ((uint64_t)(vp->id & 0xff) << 56) | ((uint64_t)vp->preempt_req_no << REQ_SEQ_BITS) |
	       (seq & REQ_SEQ_MASK);
}

/* How many preemption frames are stacked here: this one, and each one below it whose handler
 * was interrupted at its first instruction, i.e. delivered before it could run. The frame the
 * kernel builds for an x86-64 handler starts with the return address, then the ucontext; the
 * interrupted stack pointer of a nested frame points at the frame below. */
static unsigned frames_here(const ucontext_t *uc, const struct rt_thread *t)
{
	uintptr_t lo = (uintptr_t)t->stack.lo, size = t->stack.size;
	unsigned n = 1;
	while ((uintptr_t)uc->uc_mcontext.gregs[REG_RIP] == (uintptr_t)on_preempt) {
		uintptr_t below = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP] + sizeof(void *);
		if (below - lo >= size || size - (below - lo) < sizeof(ucontext_t))
			break;
		uc = (const ucontext_t *)below;
		n++;
	}
	return n;
}

static void note_depth(unsigned n)
{
	unsigned long cur = __atomic_load_n(&rt_g.preempt_depth, __ATOMIC_RELAXED);
	while (n > cur && !__atomic_compare_exchange_n(&rt_g.preempt_depth, &cur, n, false,
						       __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

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
	uint64_t req = si->si_code == SI_QUEUE ? (uint64_t)(uintptr_t)si->si_value.sival_ptr : 0;
	if (req) /* this request is taken: the ticker may send the next one */
		__atomic_compare_exchange_n(&vp->preempt_req, &req, 0, false, __ATOMIC_RELEASE,
					    __ATOMIC_RELAXED);
	struct sa_thr_mailbox *tm = __atomic_load_n(&vp->mb.sa_curthread, __ATOMIC_ACQUIRE);
	if (!tm)
		return;
	struct rt_thread *t = rt_thread_of(tm);
	uintptr_t sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
	if (sp - (uintptr_t)t->stack.lo >= t->stack.size)
		return; /* not t's flow on this kernel thread */
	note_depth(frames_here(uc, t));
	uint64_t seq = __atomic_load_n(&vp->run_seq, __ATOMIC_RELAXED);
	if (si->si_code == SI_QUEUE && (req & REQ_SEQ_MASK) != (seq & REQ_SEQ_MASK))
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

/* Publish the request before it can be taken: the handler may run before the send returns. */
static void send_request(struct rt_vp *vp, pid_t pid, int32_t tid, uint64_t seq)
{
	uint64_t req = request_value(vp, seq);
	vp->preempt_req_tid = tid;
	__atomic_store_n(&vp->preempt_req, req, __ATOMIC_RELEASE);
	siginfo_t si;
	memset(&si, 0, sizeof si);
	si.si_signo = RT_PREEMPT_SIG;
	si.si_code = SI_QUEUE;
	si.si_pid = pid;
	si.si_uid = getuid();
	si.si_value.sival_ptr = (void *)(uintptr_t)req;
	if (syscall(SYS_rt_tgsigqueueinfo, pid, tid, RT_PREEMPT_SIG, &si) == 0)
		RT_STAT(vp, preempt_signals); /* the ticker is this counter's only writer */
	else
		__atomic_compare_exchange_n(&vp->preempt_req, &req, 0, false, __ATOMIC_RELAXED,
					    __ATOMIC_RELAXED);
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
	if (tid != vp->preempt_req_tid) /* a request to the last runner is moot: give it up */
		__atomic_store_n(&vp->preempt_req, 0, __ATOMIC_RELAXED);
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
	    !rt_vp_has_work(vp) || __atomic_load_n(&vp->preempt_req, __ATOMIC_ACQUIRE))
		return;
	send_request(vp, pid, tid, seq);
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
		rt_g.vps[i]->preempt_req = 0;
		rt_g.vps[i]->preempt_req_tid = 0;
	}
	__atomic_store_n(&rt_g.preempt_depth, 0, __ATOMIC_RELAXED);
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
