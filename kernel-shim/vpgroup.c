/*
 * vpgroup.c - a virtual processor's own cpu cgroup: the VP keeps its processor when its runner
 * blocks.
 *
 * A SCHED_IDLE thread is idle only relative to the threads of its cpu cgroup. The idle
 * detector's standby, put in a cgroup with the kernel thread that runs the VP, gets the group's
 * share of the CPU the moment the runner blocks, whatever else runs on the machine: the group's
 * scheduling entity was running the runner and simply picks the standby next. Outside such a
 * group the standby waits until nothing on the machine wants its CPU (a CPU hog: milliseconds
 * to seconds, bounded only by the watchdog's backstop).
 *
 * So each VP watched by the idle detector gets a group (cgroup.c makes it under the process's
 * own cgroup) holding
 *   - its runner: moved in at arm, and at a hand-off when the claimer was not inside already
 *     (runner_changed, one write on the claimer); the blocked activation leaves at T6 (lost.c);
 *   - one standby per CPU, pinned, watching only this VP (idle.c);
 *   - one spare, `ready`, taken from the pool and moved in by a standby while the VP's CPU had
 *     nothing else to do, so that the claimer the standby wakes runs at once inside the group
 *     rather than behind the machine's other threads. No write on the way from a block to its
 *     upcall when it is there.
 * The group lives while the VP or one of its standbys refers to it: the last one out removes
 * it (ks_cg_free). A standby that cannot leave SCHED_IDLE (no privilege to raise its policy
 * again) is kept here for the next VP's standby instead of joining the pool.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include "ks.h"
#include "cgroup.h"

struct ks_vpg {
	struct ks_cg *g;
	uint32_t refs;          /* the VP's, and one per standby not gone yet */
	uint32_t stop;          /* the VP let the group go: its standbys leave */
	struct ks_act *ready;   /* a spare inside g, out of the pool, for the next claim */
	size_t size;            /* of the standbys' area */
	char standbys[] __attribute__((aligned(64)));
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* the fields below */
static int decided, usable;
static const char *usable_why = "";
static char make_err[256];
static struct ks_act *kept; /* standbys kept at SCHED_IDLE, waiting for a VP's standby task */

/* The tid to write to move act: 0 when it is the calling thread (the kernel's cheaper move of
 * the writer itself, see ready_task). */
static pid_t self_or(const struct ks_act *act)
{
	return act->ks_tid == (pid_t)ks_raw_syscall6(SYS_gettid, 0, 0, 0, 0, 0, 0) ? 0 : act->ks_tid;
}

static const char *off_why(void)
{
	return ks_vp_cgroup_default ? "off for this thread (its configuration)"
				    : "off: LAIO_CGROUP is not 1, and the thread's configuration does "
				      "not turn it on";
}

/* The process's decision, once: may it make cgroups below its own cpu cgroup? */
static int process_usable(const char **why)
{
	pthread_mutex_lock(&lock);
	if (!decided) {
		usable = ks_cg_init(1, &usable_why);
		decided = 1;
	}
	pthread_mutex_unlock(&lock);
	*why = usable_why;
	return usable;
}

struct ks_vpg *ks_vpg_new(struct ks_vp *vp, int nstandby, size_t standby_size, const char **why)
{
	const char *w;
	if (!vp->ks_cgroup) {
		*why = off_why();
		return NULL;
	}
	if (!process_usable(&w)) {
		*why = w;
		return NULL;
	}
	size_t size = (size_t)nstandby * standby_size;
	struct ks_vpg *grp = aligned_alloc(64, (sizeof *grp + size + 63) & ~(size_t)63);
	if (!grp) {
		*why = "out of memory";
		return NULL;
	}
	memset(grp, 0, sizeof *grp + size);
	grp->size = size;
	grp->refs = 1 + (uint32_t)nstandby;
	grp->g = ks_cg_new();
	if (!grp->g) {
		pthread_mutex_lock(&lock);
		snprintf(make_err, sizeof make_err, "cannot make the VP's cpu cgroup (%s)",
			 strerror(errno));
		pthread_mutex_unlock(&lock);
		*why = make_err;
		free(grp);
		return NULL;
	}
	struct ks_act *runner = vp->ks_runner;
	if (ks_cg_enter(grp->g, self_or(runner)) == 0)
		runner->ks_in_cg = true;
	__atomic_store_n(&vp->ks_grp, grp, __ATOMIC_RELEASE);
	*why = w;
	return grp;
}

void *ks_vpg_standbys(struct ks_vpg *grp)
{
	return grp->standbys;
}

bool ks_vpg_stopping(const struct ks_vpg *grp)
{
	/* seq_cst: a standby stores SB_ASLEEP, then loads this; the VP stores it, then loads the
	   standby's state to wake it (either sees the other's store) */
	return __atomic_load_n(&grp->stop, __ATOMIC_SEQ_CST) != 0;
}

/* A spare's task: out of the group, back to the pool (its task returns). */
static void leave_task(struct ks_act *self, void *arg)
{
	(void)arg;
	ks_cg_leave(0);
	self->ks_in_cg = false;
}

/* The last reference: the spare kept ready goes back to the pool, the directory goes. */
static void put(struct ks_vpg *grp)
{
	if (__atomic_sub_fetch(&grp->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	struct ks_act *r = __atomic_exchange_n(&grp->ready, NULL, __ATOMIC_ACQ_REL);
	if (r)
		ks_act_give(r, leave_task, NULL);
	ks_cg_free(grp->g); /* moves out what is still inside: blocked activations */
	free(grp);
}

void ks_vpg_stop(struct ks_vpg *grp)
{
	__atomic_store_n(&grp->stop, 1, __ATOMIC_SEQ_CST);
}

void ks_vpg_drop(struct ks_vpg *grp)
{
	put(grp);
}

void ks_vpg_release(struct ks_vp *vp)
{
	struct ks_vpg *grp = vp->ks_grp;
	if (!grp)
		return;
	__atomic_store_n(&vp->ks_grp, NULL, __ATOMIC_RELEASE);
	ks_vpg_stop(grp);
	struct ks_act *runner = vp->ks_runner;
	if (runner->ks_in_cg && ks_cg_leave(self_or(runner)) == 0)
		runner->ks_in_cg = false;
	put(grp);
}

void ks_vpg_standby_enter(struct ks_vpg *grp)
{
	ks_cg_enter(grp->g, 0);
}

/* A standby kept at SCHED_IDLE: it waits for the next VP's standby task, on a fresh stack. */
static void kept_main(void *arg)
{
	struct ks_act *self = arg;
	pthread_mutex_lock(&lock);
	self->ks_next = kept;
	kept = self;
	pthread_mutex_unlock(&lock);
	ks_act_run_given(self);
	/* back at SCHED_OTHER after all (a raised RLIMIT_NICE): an ordinary spare */
	ks_act_become_spare(self);
}

/* A kept standby for task {fn, arg}, else a spare (it goes back to the pool when its VP goes:
 * threads do not pile up as VPs come and go), else a new thread: 0 or -1. */
int ks_vpg_start_standby(ks_task_fn *fn, void *arg)
{
	pthread_mutex_lock(&lock);
	struct ks_act *act = kept;
	if (act)
		kept = act->ks_next;
	pthread_mutex_unlock(&lock);
	if (!act)
		act = ks_act_take();
	if (!act)
		return ks_act_start(fn, arg);
	ks_act_give(act, fn, arg);
	return 0;
}

void ks_vpg_standby_leave(struct ks_act *self, struct ks_vpg *grp)
{
	struct sched_param sp = { 0 };
	cpu_set_t all;
	memset(&all, 0xff, sizeof all); /* the kernel keeps only the CPUs the process may use */
	bool normal = !self->ks_idle_class || sched_setscheduler(0, SCHED_OTHER, &sp) == 0;
	/* still inside: a standby kept at SCHED_IDLE may take cg.lock in ks_cg_free(), and in the
	   group (its VP gone) nothing keeps it from the CPU while a normal thread waits for it */
	put(grp); /* the standby's own memory may be gone from here on */
	ks_cg_leave(0);
	if (!normal) {
		KS_KSTACK_CLEAN(self);
		ks_run_on(self->ks_kstack_top, kept_main, self);
	}
	sched_setaffinity(0, sizeof all, &all);
	if (self->ks_idle_class)
		__atomic_fetch_sub(&ks_stat.idle_class, 1, __ATOMIC_RELAXED);
	self->ks_idle_class = false;
	/* the standby's task returns: it becomes a spare */
}

/* Wait, inside the group, for the task the standby gives the ready spare (a claim), or the
 * last reference (leave_task). */

/* A spare's task: move itself into the group and wait there as `ready`. It moves itself (a
 * tid of 0): the kernel then need not write-lock the process's thread-group lock, which a move
 * of another thread takes (up to an RCU grace period, with every clone and exit of the process
 * waiting behind it). Holds a reference to the group until it is in `ready`. */
static void ready_task(struct ks_act *self, void *arg)
{
	struct ks_vpg *grp = arg;
	struct ks_act *none = NULL;
	bool in = !ks_vpg_stopping(grp) && ks_cg_enter(grp->g, 0) == 0;
	self->ks_in_cg = in;
	if (in && __atomic_compare_exchange_n(&grp->ready, &none, self, false, __ATOMIC_ACQ_REL,
					      __ATOMIC_RELAXED)) {
		put(grp); /* the last one drains `ready`: this spare gets leave_task */
		ks_act_run_given(self);
		return;
	}
	put(grp);
	if (in)
		leave_task(self, NULL);
}

void ks_vpg_refill(struct ks_vpg *grp)
{
	if (__atomic_load_n(&grp->ready, __ATOMIC_RELAXED) || ks_vpg_stopping(grp))
		return;
	struct ks_act *spare = ks_act_take();
	if (!spare)
		return;
	__atomic_fetch_add(&grp->refs, 1, __ATOMIC_ACQ_REL); /* the caller holds one: never 0 here */
	ks_act_give(spare, ready_task, grp);
}

/* The task of the ready spare sent to claim: a refused claim leaves the group. */
static void claim_task(struct ks_act *self, void *arg)
{
	struct ks_vp *vp = arg;
	self->ks_vp = vp;
	ks_claim(self, vp, self->ks_claim_m, self->ks_claim_s, self->ks_claim_by);
	ks_cg_leave(0);
	self->ks_in_cg = false;
	ks_vp_unref(vp); /* only if the runner kept the VP: a won claim does not return */
}

bool ks_vpg_send_claimer(struct ks_vp *vp, struct sa_thr_mailbox *m, uint64_t s, int by)
{
	struct ks_vpg *grp = __atomic_load_n(&vp->ks_grp, __ATOMIC_ACQUIRE);
	struct ks_act *spare = grp ? __atomic_exchange_n(&grp->ready, NULL, __ATOMIC_ACQ_REL) : NULL;
	if (!spare) /* a pool spare: it moves in if it wins (ks_vpg_runner_changed) */
		return ks_send_claimer(vp, m, s, by, -1);
	ks_give_claim(spare, vp, m, s, by, claim_task);
	return true;
}


/* On a claimer from the pool (the ready spare is inside already) at C4, wearing the user's TLS:
 * it moves itself in, one write that leaves errno alone and, moving the writer, takes no
 * process-wide lock. The blocked activation leaves at T6, once its call is over. */
void ks_vpg_runner_changed(struct ks_vp *vp, struct ks_act *old)
{
	struct ks_act *self = vp->ks_runner;
	struct ks_vpg *grp = vp->ks_grp;
	(void)old;
	if (grp && !self->ks_in_cg && ks_cg_enter(grp->g, 0) == 0)
		self->ks_in_cg = true;
}

const char *ks_vpg_state(struct ks_vp *vp, const char **why)
{
	if (vp->ks_grp) {
		*why = usable_why;
		return ks_cg_mode();
	}
	if (!vp->ks_cgroup)
		*why = off_why();
	else if (decided && !usable)
		*why = usable_why;
	else if (make_err[0])
		*why = make_err;
	else
		*why = "not used: only the idle detector's standby needs it, and this thread's "
		       "detector is another";
	return "off";
}

/* fork(): the child's only thread was its VP's runner, in the parent's group. It goes back to
 * the base, and the child forgets the parent's groups (the parent removes them); its VP makes
 * one of its own when its detector is set up again. */
void ks_vpg_atfork_child(void)
{
	ks_cg_atfork_child();
	pthread_mutex_init(&lock, NULL);
	kept = NULL;
	for (struct ks_vp *vp = ks_all_vps; vp; vp = vp->ks_all_next) {
		struct ks_vpg *grp = vp->ks_grp;
		if (vp->ks_runner)
			vp->ks_runner->ks_in_cg = false;
		if (!grp)
			continue;
		vp->ks_grp = NULL;
		ks_cg_free(grp->g); /* in the child: only forgotten */
		free(grp);
	}
}
