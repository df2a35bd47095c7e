/* test_regress_claim.c - regression: a call whose claim has been decided is never claimed again.
 *
 * The claimer that wins call s of mailbox m releases ks_claiming at C4, but sa_curthread stays m
 * and tm_sys stays s (the blocked activation is still inside the call) until the winner's upcall
 * starts (C5: signal mask, detector re-arm, maybe a new standby). Under AddressSanitizer C5 can
 * sleep (the runtime maps shadow pages to unpoison a stack before the noreturn calls), and the
 * upcall detector's new standby, told of that sleep, claimed call s a second time: two
 * activations ran the VP, both resumed m's saved context on the same user stack, and a return
 * on that stack jumped to garbage (test_race's upcall case, test_laio's per_thread_completions).
 * The verdict of call s is stored before ks_claiming is released, so the next claimer sees it.
 *
 * This replays the second claim directly against the state a claimer finds in that window. The
 * claim confirms that the runner sleeps in its call (kernel-shim/confirm.c): the runner here is
 * a thread asleep in a read, or the test's own (running) thread. */
#include <linux/membarrier.h>
#include "test-util.h"
#include "sa.h"
#include "../kernel-shim/ks.h"

#define STACK (64 * 1024)
#define CALL 7 /* tm_sys of the call in progress (odd) */

static struct sa_context back; /* where the test goes on after the attempt */
static int nblocked;           /* BLOCKED upcalls delivered by the attempt */

static void on_upcall(struct sa_mailbox *mb, struct sa_upcall *u)
{
	if (u->sa_event == SA_BLOCKED)
		nblocked++;
	sa_switch_to(mb, NULL, &back, 1);
}

struct attempt {
	struct ks_act *self;
	struct ks_vp *vp;
	struct sa_thr_mailbox *m;
};

static void claim_on_own_stack(void *arg)
{
	struct attempt *a = arg;
	ks_claim(a->self, a->vp, a->m, CALL, SA_DETECT_WATCHDOG); /* returns only when it does not take the VP */
	ks_resume(&back, 0);
}

struct outcome {
	long won;
	int nblocked;
	bool runner_kept, claim_untouched;
};

static int sleeper_pipe[2];
static pid_t sleeper_tid;

static pid_t spinner_tid;
static int spinner_stop;

static void *spinner(void *arg)
{
	(void)arg;
	__atomic_store_n(&spinner_tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	while (!__atomic_load_n(&spinner_stop, __ATOMIC_ACQUIRE))
		;
	return NULL;
}

static void *sleeper(void *arg)
{
	char c;
	(void)arg;
	__atomic_store_n(&sleeper_tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	while (read(sleeper_pipe[0], &c, 1) < 0)
		;
	return NULL;
}

/* A VP whose runner (kernel thread `tid`) is inside call CALL of m, its verdict `verdict` (0:
 * undecided), and a spare claiming that call: did the claim take the VP? */
static struct outcome attempt(uint64_t verdict, pid_t tid)
{
	struct sa_mailbox mb = { 0 };
	struct sa_thr_mailbox m;
	struct ks_vp *vp = calloc(1, sizeof(*vp));
	struct ks_act *runner = calloc(1, sizeof(*runner));
	struct ks_act *spare = calloc(1, sizeof(*spare));
	char *kstack = malloc(KS_KSTACK_SIZE), *upcall_stack = malloc(STACK), *stack = malloc(STACK);
	cr_assert(vp && runner && spare && kstack && upcall_stack && stack);

	sa_thr_init(&m);
	m.tm_sys = CALL;
	m.tm_verdict = verdict;
	m.tm_cstate = SA_CALL_NONE;
	mb.sa_func = on_upcall;
	mb.sa_stack = upcall_stack;
	mb.sa_stacksize = STACK;
	mb.sa_notify_fd = -1;
	mb.sa_vp = vp;
	mb.sa_curthread = &m;
	vp->ks_mbox = &mb;
	vp->ks_runner = runner;
	vp->ks_fs = ks_get_fs();            /* a won claim wears it: our own, nothing changes */
	vp->ks_detector = SA_DETECT_PROBE;  /* nothing to arm after a won claim */
	vp->ks_refs = 1;                    /* the claimer's */
	runner->ks_role = KS_RUNNER;
	runner->ks_vp = vp;
	runner->ks_perf_fd = -1;
	runner->ks_tid = tid;
	char path[64];                      /* the runner's confirmation file, as it would open it */
	snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
	runner->ks_sysfd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert(runner->ks_sysfd >= 0, "open %s", path);
	spare->ks_role = KS_STANDBY;
	spare->ks_fs = vp->ks_fs;
	spare->ks_perf_fd = -1;
	spare->ks_sysfd = -1;
	spare->ks_kstack_top = kstack + KS_KSTACK_SIZE;
	spare->ks_tid = (pid_t)syscall(SYS_gettid);

	struct attempt a = { spare, vp, &m };
	nblocked = 0;
	struct outcome o;
	o.won = sa_save_and_run(&back, claim_on_own_stack, &a, stack + STACK);
	o.nblocked = nblocked;
	o.runner_kept = vp->ks_runner == runner;
	o.claim_untouched = m.tm_claim == 0 && m.tm_verdict == verdict;
	cr_expect_eq(vp->ks_claiming, 0, "ks_claiming released");

	close(runner->ks_sysfd);
	ks_stack_clean(stack, STACK); /* frames abandoned by jumps */
	ks_stack_clean(upcall_stack, STACK);
	ks_stack_clean(kstack, KS_KSTACK_SIZE);
	free(stack);
	free(upcall_stack);
	free(kstack);
	free(spare);
	free(runner);
	free(vp);
	return o;
}

Test(regress_claim, decided_call_is_not_claimed_again)
{
	/* any detector's availability check sets the process up (membarrier registration) */
	sa_detector_available(SA_DETECT_PROBE, NULL);
	long q = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
	if (q < 0 || !(q & MEMBARRIER_CMD_PRIVATE_EXPEDITED))
		cr_skip_test("no membarrier: no claim can be won here");

	pthread_t t;
	cr_assert_eq(pipe(sleeper_pipe), 0);
	cr_assert_eq(pthread_create(&t, NULL, sleeper, NULL), 0);
	while (!__atomic_load_n(&sleeper_tid, __ATOMIC_ACQUIRE))
		sched_yield();
	usleep(20000); /* asleep in its read by now */

	/* control: an undecided call in progress is taken, with one BLOCKED upcall */
	struct outcome o = attempt(0, sleeper_tid);
	cr_assert_eq(o.won, 1, "an undecided call in progress must be claimable (setup)");
	cr_assert_eq(o.nblocked, 1);
	cr_assert(!o.runner_kept);

	/* the window of C5: call CALL was won, the winner has not started its upcall yet */
	o = attempt((CALL << 1) | 1, sleeper_tid);
	cr_expect_eq(o.won, 0, "a call already won was claimed a second time");
	cr_expect_eq(o.nblocked, 0, "a second BLOCKED upcall for the same call");
	cr_expect(o.runner_kept, "the VP changed hands twice for one call");
	cr_expect(o.claim_untouched, "the second claimer wrote tm_claim or tm_verdict");

	/* a claim refused earlier (the runner was running): the runner may already have read
	   that verdict and gone back to its user code. A new claim may look again, but must not
	   take a VP whose runner runs: the confirmation refuses it */
	pthread_t sp;
	cr_assert_eq(pthread_create(&sp, NULL, spinner, NULL), 0);
	while (!__atomic_load_n(&spinner_tid, __ATOMIC_ACQUIRE))
		sched_yield();
	o = attempt(CALL << 1, spinner_tid);
	__atomic_store_n(&spinner_stop, 1, __ATOMIC_RELEASE);
	pthread_join(sp, NULL);
	cr_expect_eq(o.won, 0, "a running runner's call was claimed");
	cr_expect_eq(o.nblocked, 0);
	cr_expect(o.runner_kept);

	cr_assert_eq(write(sleeper_pipe[1], "x", 1), 1);
	pthread_join(t, NULL);
}
