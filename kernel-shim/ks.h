/*
 * ks.h - the kernel's side of scheduler activations, played in user space (internal).
 *
 * The shim owns activations (kernel threads with their own stacks), the syscall trap, block
 * detection and upcall delivery. The one concurrent protocol (the trap, the claim, release and
 * completion) is written down in docs/protocol.md with the names used here.
 *
 * Layers, bottom to top; a file calls only files of its own layer's lower neighbours, never up
 * (scripts/layers.sh checks it from the objects' symbol tables):
 *   1 primitives   ctx.S (raw syscall, TLS base, contexts), futex.c, counters.c, tls.c, sigmask.c,
 *                  cgroup_find.c and cgroup.c (a VP's cpu cgroup, cgroup.h)
 *   2 pool         act.c: kernel threads that run the task {fn, arg} they are given
 *   3 VP           vp.c (registry, references), confirm.c (is the runner asleep?),
 *                  complete.c (T7-T8), deliver.c (upcalls, release R1-R6)
 *   4 claim        claim.c (C0-C5), lost.c (T6-T9), cancel.c (sa_interrupt)
 *   5 moving       hold.c (its files, outside the process's table), move.c: a call goes to a
 *                  spare before it blocks
 *   6 detectors    probe.c, upcall.c, watchdog.c, vpgroup.c (the idle standby's cpu cgroup),
 *                  idle.c, each detector one struct ks_detector;
 *                  detect.c chooses them and fills the routes
 *   7 trap         trap.S (T0-T5), signals.c (its cancel window), entry.c (sa_syscall's routes)
 * activation/sa.c, above the shim, defines every sa_* entry point.
 *
 * Activation roles (ks_act.ks_role), each set by the activation itself unless noted:
 *   KS_SPARE    parked in the pool, waiting for a task
 *   KS_RUNNER   runs the user code of VP ks_vp (exactly one per VP: ks_vp->ks_runner)
 *   KS_BLOCKED  executes a call that went to the background; then completes it, becomes spare
 *   KS_STANDBY  a detector's waiting thread (upcall standby, idle standby, watchdog)
 */
#ifndef KS_H
#define KS_H

#include <stdint.h>
#include <stdbool.h>
#include <pthread.h>
#include <sys/types.h>
#include <linux/rseq.h>
#include "../activation/sa.h"
#include "../activation/sa-valgrind.h"

#define KS_KSTACK_SIZE (256 * 1024)
#define KS_SPIN_NS 20000 /* spin this long before a futex sleep: a cross-CPU wakeup costs ~39 us */
#define KS_NCALLS 512    /* system call numbers the routes cover */
#define KS_MAXCPU 1024   /* CPUs the idle detector's per-CPU words cover */

enum ks_role { KS_SPARE, KS_RUNNER, KS_BLOCKED, KS_STANDBY };

struct ks_act;
struct ks_vp;
typedef void ks_task_fn(struct ks_act *self, void *arg);

struct ks_act {
	struct rseq ks_rseq;           /* 0: this kernel thread's rseq area; the kernel keeps its
					  cpu_id current, the trap reads it with a plain load */
	uint32_t ks_wake;              /* futex: 1 when a task was given */
	uint32_t ks_sleeping;          /* 1 while in futex_wait on ks_wake */
	pid_t ks_tid;
	int ks_role;
	uint64_t ks_fs;                /* the TLS base this activation wears now */
	void *ks_kstack_top;           /* its own stack (the "kernel stack" of a trap) */
	ks_task_fn *ks_fn;             /* the task given (act.c knows nothing else of it) */
	void *ks_arg;
	struct ks_vp *ks_vp;           /* the VP it runs, or the VP of the call it executes */
	struct sa_thr_mailbox *ks_claim_m; /* a claim task: call ks_claim_s of ks_claim_m, */
	uint64_t ks_claim_s;
	int ks_claim_by;               /* found by this detector (enum sa_detector) */
	uint64_t ks_mask_applied;      /* a blocked runner: the mask its claimer gave the flow */
	int ks_perf_fd;                /* the upcall detector's event on this thread, or -1 */
	int ks_sysfd;                  /* its /proc/thread-self/syscall once it may run a VP, or -1 */
	bool ks_sysfd_stat;            /* ks_sysfd is its .../stat: syscall was not readable */
	bool ks_spin;                  /* may run on more than one CPU: spinning can pay off */
	bool ks_spin_now;              /* a spare: spin before it sleeps (act.c, ks_spin_pays) */
	bool ks_idle_class;            /* it runs at SCHED_IDLE (for good, without privilege) */
	bool ks_counted;               /* accounted in ks_stat.activations: it was in the pool */
	bool ks_in_cg;                 /* it sits in a VP's cpu cgroup (vpgroup.c): it leaves at
					  T6 when it lost the VP, or when it stops being a claimer */
	struct ks_act *ks_next;        /* in the pool */
	struct ks_act *ks_all_next;    /* in the list of every activation */
	unsigned ks_vg_stack;          /* its own stack's id for memcheck (sa-valgrind.h) */
};

/* A call a detector already acted on: (mailbox, tm_sys) names one call of one flow. For a
 * proposed claim: when a refused one may be proposed again, and how often it was. */
struct ks_seen {
	struct sa_thr_mailbox *m;
	uint64_t s;
	uint64_t next_ns;
	unsigned tries;
};
static inline bool ks_seen_is(const struct ks_seen *k, const struct sa_thr_mailbox *m, uint64_t s)
{
	return k->m == m && k->s == s;
}

struct ks_detector;

/* Each detector's own part of a VP: only its file touches it. */
struct ks_vp_upcall { struct ks_act *standby; };          /* who receives the VP's notices */
struct ks_vp_watchdog {
	struct ks_seen look, claimed;  /* the last look; the last claim sent */
	uint64_t covered_ns;          /* when a standby of the runner's CPU last looked (the
					 backstop leaves its calls to it for a while) */
};
struct ks_vp_idle { struct ks_seen claimed; void *own; }; /* the call last proposed; the
								    VP's own standbys, one per CPU,
								    when it has a cpu cgroup */
struct ks_vpg;

struct ks_vp {
	struct sa_mailbox *ks_mbox;
	void *ks_kstack_top;           /* 8: the runner's own stack top (read by the trap) */
	struct ks_act *ks_runner;      /* 16: the one activation running this VP's user code */
	uint64_t ks_fs;                /* the user context's TLS base: fixed for the VP's life */
	const struct ks_detector *ks_det; /* 32: the detector of trapped calls (NULL: none) */
	uint32_t ks_claiming;          /* one claimer at a time (CAS 0 -> 1) */
	uint32_t ks_parked;            /* futex: 1 while the runner sleeps in sa_release() */
	uint32_t ks_kicked;            /* sa_wakeup() on a VP that was not parked */
	int ks_detector;               /* enum sa_detector chosen for this VP */
	int ks_dead;
	int ks_watch;                  /* KS_WATCH_*: what the watchdog does for this VP */
	uint64_t ks_nsync_seen;        /* the last call counted in sa_nsync by a refused claim */
	int32_t ks_blocked_cpu;        /* the CPU its last blocked runner last showed (R1 spins only
					  elsewhere: that activation finishes there) */
	struct sa_upcall ks_ev;        /* the upcall being delivered (one at a time per VP) */
	struct ks_vp_upcall ks_up;
	struct ks_vp_watchdog ks_wd;
	struct ks_vp_idle ks_idle;
	unsigned char ks_route[KS_NCALLS]; /* per system call number: KS_ROUTE_* */
	struct ks_vp *ks_all_next;     /* in the list of every VP */
	uint32_t ks_refs;              /* activations that may still touch this VP without owning
					  it: inside ks_complete(), a dispatched claimer, a standby.
					  sa_free() waits for zero. */
	int ks_cgroup;                 /* 1: a cpu cgroup of its own where the process may make
					  one (sa_set_cgroup); 0: not */
	struct ks_vpg *ks_grp;         /* that cgroup while the idle detector watches the VP */
	unsigned ks_vg_upcall;         /* the mailbox's upcall stack's id for memcheck */
};

/* How sa_syscall() runs a call of a given number (ks_vp.ks_route). */
enum { KS_ROUTE_DIRECT, KS_ROUTE_TRAP, KS_ROUTE_PROBE, KS_ROUTE_MOVE, KS_ROUTE_MOVE_ARGS,
       KS_ROUTE_MASK, /* rt_sigprocmask: never blocks; the recorded mask follows it */
       KS_ROUTE_REARM /* after fork(): set the detector up again, then route the call */ };

#define KS_SIG_CANCEL (SIGRTMAX - 1) /* interrupts a background call (sa_interrupt) */
#define KS_SIG_UPCALL (SIGRTMAX - 2) /* the upcall detector's switch-out notice */

/* ---- 1. primitives ---------------------------------------------------------------------- */
/* ctx.S */
void ks_wrfs(uint64_t base);
long ks_raw_syscall6(long nr, long a1, long a2, long a3, long a4, long a5, long a6);
long ks_save_and_run(struct sa_context *ctx, void (*fn)(void *), void *arg, void *stack_top);
__attribute__((noreturn)) void ks_resume(const struct sa_context *ctx, long value);
__attribute__((noreturn)) void ks_run_on(void *stack_top, void (*fn)(void *), void *arg);
long ks_cancellable_syscall(struct sa_thr_mailbox *m);
extern char ks_cancel_window_start[], ks_cancel_window_end[], ks_cancel_out[];
extern uint8_t ks_have_fsgsbase;

/* futex.c: the kernel's wait primitive and clock */
int ks_futex_wait(uint32_t *word, uint32_t val, const struct timespec *abs_monotonic);
void ks_futex_wake(uint32_t *word, int n);
uint64_t ks_now_ns(void);
bool ks_may_spin(void);
void ks_spin_pause(void);

/* counters.c */
struct ks_counters {
	unsigned long activations, spares, claims_won, claims_lost, moved, sync_fallback;
	unsigned long handoffs[SA_DETECT_COUNT]; /* per detector: blocked calls handed off */
	unsigned long idle_kicks;                /* the trap woke an idle standby */
	unsigned long idle_class;                /* activations at SCHED_IDLE */
	unsigned long mask_stale;                /* a claim gave a flow an outdated signal mask */
	unsigned long confirm_running;           /* claims dropped: the runner was not asleep */
	unsigned long barriers;                  /* claims that needed a membarrier */
};
extern struct ks_counters ks_stat;
#define KS_COUNT(field) __atomic_fetch_add(&ks_stat.field, 1, __ATOMIC_RELAXED)
void ks_counters_read(struct ks_counters *out);

/* tls.c: identity that follows the user context */
uint64_t ks_get_fs(void);
void ks_tls_init(void);
void ks_adopt_exit_tid(uint64_t fs);
bool ks_rseq_own(struct ks_act *act);
void ks_rseq_drop(struct ks_act *act);
extern bool ks_rseq_ok;
static inline int32_t ks_cpu_of(const struct ks_act *act)
{
	return (int32_t)__atomic_load_n(&act->ks_rseq.cpu_id, __ATOMIC_RELAXED);
}

/* sigmask.c: the user context's signal mask, recorded in its TLS */
extern __thread uint64_t ks_umask __attribute__((tls_model("initial-exec")));
void ks_umask_init(void);
void ks_umask_refresh(void);
uint64_t ks_umask_of(uint64_t fs);
void ks_carry_pending(struct ks_vp *vp);
#define KS_SIGBIT(sig) (1ull << ((sig) - 1))

/* A stack about to be reused from its top: frames abandoned by a jump (not a return) leave
 * AddressSanitizer's redzones behind; clear them. Nothing in other builds. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
static inline void ks_stack_clean(void *lo, size_t size)
{
	__asan_unpoison_memory_region(lo, size);
}
#else
static inline void ks_stack_clean(void *lo, size_t size)
{
	(void)lo;
	(void)size;
}
#endif
#define KS_KSTACK_CLEAN(act) \
	ks_stack_clean((char *)(act)->ks_kstack_top - KS_KSTACK_SIZE + 4096, KS_KSTACK_SIZE - 4096)

/* ---- 2. the pool of activations (act.c) ------------------------------------------------- */
extern unsigned long ks_max_activations;
struct ks_act *ks_act_self_init(void);
struct ks_act *ks_act_take(void);     /* a spare, or NULL: never creates a thread */
struct ks_act *ks_act_take_near(int32_t cpu); /* the same, preferring one that slept on cpu */
void ks_act_run_given(struct ks_act *act);
struct ks_act *ks_act_wait_take(void); /* a spare, waiting for the spawner; NULL: none can come */
bool ks_act_may_create(void);         /* one more activation may be born (movers too) */
bool ks_act_exhausted(void);          /* no spare, and none can be made (limit, failure) */
void ks_act_give(struct ks_act *act, ks_task_fn *fn, void *arg);
int ks_act_start(ks_task_fn *fn, void *arg); /* a new thread of its own for a long task */
/* Is a spin worth it for `self`, waiting for a thread last seen on `waited_cpu` (-1: unknown)?
 * Not on a single CPU, nor on that thread's CPU, where the spin holds it off (act.c). */
bool ks_spin_pays(const struct ks_act *self, int32_t waited_cpu);
__attribute__((noreturn)) void ks_act_become_spare(struct ks_act *act);
void ks_pool_init(void);
void ks_pool_reserve(unsigned n);     /* at least n spares, made off the caller's path */
void ks_act_retire(struct ks_act *act);
void ks_inject_create_failures(int n);
void ks_acts_atfork_prepare(void);
void ks_acts_atfork_parent(void);
void ks_acts_atfork_child(void);

/* ---- 3. virtual processors -------------------------------------------------------------- */
/* vp.c */
struct ks_vp *ks_vp_new(struct sa_mailbox *mb, struct ks_act *runner);
void ks_vp_register(struct ks_vp *vp);
void ks_vp_unregister(struct ks_vp *vp);
void ks_vp_free(struct ks_vp *vp);
pid_t ks_vp_runner_tid(struct ks_vp *vp);
void ks_vp_ref(struct ks_vp *vp);
void ks_vp_unref(struct ks_vp *vp);
extern struct ks_vp *ks_all_vps;
extern pthread_mutex_t ks_vps_lock;
void ks_vp_stop_claims(struct ks_vp *vp);
extern int ks_vp_cgroup_default;      /* ks_cgroup of a new VP (LAIO_CGROUP; 0 unless set) */
void ks_vps_atfork_prepare(void);
void ks_vps_atfork_parent(void);
void ks_vps_atfork_child(struct sa_mailbox *self);
/* confirm.c: is the runner really asleep in its call? (1 yes, 0 no, -1 cannot tell) */
/* ks_runner_asleep: 1 asleep in a call, ordered; KS_ASLEEP_UNORDERED asleep (its stat file), the
 * claim must still order memory; 0 running; -1 cannot be told */
#define KS_ASLEEP_UNORDERED 2
int ks_runner_asleep(struct ks_act *runner);
void ks_sysfd_open(struct ks_act *self);
void ks_sysfd_reopen_after_fork(struct ks_act *self);
void ks_sysfd_close(struct ks_act *self);
/* complete.c */
void ks_complete(struct ks_vp *vp, struct sa_thr_mailbox *m, long raw);
long ks_with_prefix(long raw, long prefix);
int ks_has_completed(struct sa_mailbox *mb);
struct sa_thr_mailbox *ks_take_completed(struct sa_mailbox *mb);
/* deliver.c */
__attribute__((noreturn)) void ks_deliver(struct ks_vp *vp);
__attribute__((noreturn)) void ks_upcall_blocked(struct ks_vp *vp, struct sa_thr_mailbox *m, int by,
						 bool moved);
int ks_release(struct ks_vp *vp, const struct timespec *timeout);
void ks_wakeup(struct ks_vp *vp);

/* ---- 4. the claim ----------------------------------------------------------------------- */
/* claim.c */
void ks_claim_init(void);
bool ks_claim(struct ks_act *self, struct ks_vp *vp, struct sa_thr_mailbox *m, uint64_t s, int by);
bool ks_send_claimer(struct ks_vp *vp, struct sa_thr_mailbox *m, uint64_t s, int by, int32_t near);
int ks_runner_sleeps(struct ks_vp *vp);
void ks_give_claim(struct ks_act *act, struct ks_vp *vp, struct sa_thr_mailbox *m, uint64_t s,
		   int by, ks_task_fn *task);
bool ks_propose_due(const struct ks_seen *k, struct sa_thr_mailbox *m, uint64_t s, uint64_t now);
void ks_proposed(struct ks_seen *k, struct sa_thr_mailbox *m, uint64_t s, uint64_t now);
void ks_count_sync(struct ks_vp *vp, struct sa_thr_mailbox *m, uint64_t s);
void ks_count_handoff(struct ks_vp *vp, int by);
/* lost.c */
void ks_after_lost(struct ks_vp *vp, struct sa_thr_mailbox *m, long raw);
/* cancel.c */
int ks_interrupt(struct sa_thr_mailbox *m);

/* ---- 5. moving a call ------------------------------------------------------------------- */
/* hold.c: the files of a moved call, held outside the process's descriptor table. On the
 * caller, m's call and arguments set: the activation to give the call to. For a call that does
 * I/O on its descriptors, one that has taken their files into a table of its own (m->tm_args
 * then names them there; bit i of m->tm_dupfds: argument i was taken); NULL when none can be
 * had (the call then runs synchronously). */
struct ks_act *ks_hold_take(struct ks_vp *vp, struct sa_thr_mailbox *m);
/* On the activation that ran m's call, before its completion: let the files go. */
void ks_hold_release(struct ks_act *act, struct sa_thr_mailbox *m);
unsigned long ks_hold_parked(void); /* activations of the kind that take files, parked now */
bool ks_hold_applies(long nr);      /* a moved call nr has files a mover holds */
/* move.c */
long ks_move_call(struct ks_vp *vp, long nr, const long args[6], int by, long prefix);

/* ---- 6. detectors ----------------------------------------------------------------------- */
/*
 * A detector of trapped calls, in the shape of Linux's struct sched_class: the rest of the shim
 * calls it only through this table (vp->ks_det), never by name.
 *   available  can it work in this process? why: the reason when not
 *   arm        start watching vp (its runner is vp->ks_runner); -1 if it cannot
 *   disarm     stop watching vp (a detector change, sa_destroy)
 *   runner_changed  a claim moved vp from `old` to vp->ks_runner (on the claimer, at C5)
 *   park       the runner parks on purpose (sa_release) or comes back (parking false)
 *   kick       from the trap after T1 when ks_kick[cpu] has this detector's bit: wake or
 *              retarget whatever must see the call; touches no errno
 *   retire     an activation is retired (its per-thread resources)
 *   atfork_child  the child of fork() has none of the detector's threads
 */
struct ks_detector {
	const char *name;
	int id;                        /* enum sa_detector */
	int (*available)(const char **why);
	int (*arm)(struct ks_vp *vp);
	void (*disarm)(struct ks_vp *vp);
	void (*runner_changed)(struct ks_vp *vp, struct ks_act *old);
	void (*park)(struct ks_vp *vp, bool parking);
	void (*kick)(struct ks_vp *vp, int32_t cpu);
	void (*retire)(struct ks_act *act);
	void (*atfork_child)(void);
};
extern const struct ks_detector ks_det_upcall, ks_det_watchdog, ks_det_idle;
/* ks_kick[cpu]: bit (1 << detector id) when that detector wants the trap to call its kick for
 * calls made on cpu (its thread sleeps); index cpu & (KS_MAXCPU - 1). Plain loads in the trap:
 * each detector that sets a bit pays a membarrier before it sleeps (asymmetric Dekker). */
extern uint32_t ks_kick[KS_MAXCPU];
void ks_kick_set_all(int id, bool on);
/* probe.c: 1 done without blocking (raw set); 0 would block (move it); -1 no probe for this
 * fd; 2 a partial result that is not the call's (raw: the bytes read; args: the rest to move) */
int ks_probe_try(long nr, long args[6], long *raw);
bool ks_probe_applies(long nr);
/* detect.c */
int ks_detector_available(int d, const char **why);
int ks_detector_set(struct ks_vp *vp, int d);
void ks_detectors_retire(struct ks_act *act);
void ks_trap_kick(struct ks_vp *vp, int32_t cpu); /* from the trap (T1k) */
void ks_detector_disarm(struct ks_vp *vp);
const char *ks_detector_name(struct ks_vp *vp, long nr);
void ks_detectors_atfork_child(void);
/* watchdog.c: what the watchdog does for a VP (ks_vp.ks_watch): nothing; a backstop (a call
 * found with its runner asleep is claimed, unless a standby covers it); the detector (two looks) */
enum { KS_WATCH_NONE, KS_WATCH_BACKSTOP, KS_WATCH_DETECT };
int ks_watchdog_watch(struct ks_vp *vp, int how);
void ks_backstop_covered(struct ks_vp *vp, uint64_t now);
int ks_watchdog_start(void);
/* vpgroup.c: a VP's cpu cgroup, holding its runner, the idle standbys that watch it (one per
 * CPU) and a spare that will claim it. Made at the idle detector's arm, given up at its disarm;
 * each standby holds a reference, so that the last one out removes it. */
struct ks_vpg *ks_vpg_new(struct ks_vp *vp, int nstandby, size_t standby_size, const char **why);
void *ks_vpg_standbys(struct ks_vpg *grp);        /* nstandby * standby_size bytes, zeroed */
int ks_vpg_start_standby(ks_task_fn *fn, void *arg); /* a kept standby, a spare or a new thread */
void ks_vpg_standby_enter(struct ks_vpg *grp);    /* on a standby: into the group */
void ks_vpg_standby_leave(struct ks_act *self, struct ks_vpg *grp); /* on it: out, reference
								       dropped (the last frees) */
void ks_vpg_stop(struct ks_vpg *grp);            /* its standbys are to leave */
void ks_vpg_drop(struct ks_vpg *grp);            /* a standby that never started */
void ks_vpg_release(struct ks_vp *vp);            /* the VP lets its group go (disarm) */
bool ks_vpg_stopping(const struct ks_vpg *grp);
void ks_vpg_refill(struct ks_vpg *grp);           /* a spare into the group ahead of a claim */
bool ks_vpg_send_claimer(struct ks_vp *vp, struct sa_thr_mailbox *m, uint64_t s, int by);
void ks_vpg_runner_changed(struct ks_vp *vp, struct ks_act *old);
const char *ks_vpg_state(struct ks_vp *vp, const char **why);
void ks_vpg_atfork_child(void);

/* ---- 7. the trap and the entry ---------------------------------------------------------- */
long ks_trap(long nr, long a1, long a2, long a3, long a4, long a5, long a6);
extern __thread struct sa_mailbox *ks_self_mb;
void ks_signals_init(void);
long ks_syscall_slow(struct sa_mailbox *mb, long nr, long a1, long a2, long a3, long a4, long a5,
		     long a6);

#endif
