/*
 * ks.h - the kernel's side of scheduler activations, played in user space (internal).
 *
 * The shim owns activations (kernel threads with their own stacks), the syscall trap, block
 * detection and upcall delivery. The one concurrent protocol (the trap, the claim, release and
 * completion) is written down in docs/protocol.md with the names used here.
 *
 * Activation states (ks_act.ks_role), each moved only by the activation itself unless noted:
 *   KS_SPARE    parked in the pool, waiting for a task (ks_task, set by whoever takes it)
 *   KS_RUNNER   runs the user code of VP ks_vp (exactly one per VP: ks_vp->ks_runner)
 *   KS_BLOCKED  executes a call that went to the background; then completes it, becomes spare
 *   KS_STANDBY  waits for the upcall detector's signal for one VP
 *   KS_IDLE     the idle detector's standby of one VP: SCHED_IDLE, on its runner's CPU
 *   KS_WATCHDOG the monitor thread of the watchdog detector
 */
#ifndef KS_H
#define KS_H

#include <stdint.h>
#include <stdbool.h>
#include <pthread.h>
#include <sys/types.h>
#include <linux/rseq.h>
#include "../activation/sa.h"

#define KS_KSTACK_SIZE (256 * 1024)
#define KS_SPIN_NS 20000 /* spin this long before a futex sleep: a cross-CPU wakeup costs ~39 us */

enum ks_role { KS_SPARE, KS_RUNNER, KS_BLOCKED, KS_STANDBY, KS_WATCHDOG, KS_IDLE };

/* What a spare is woken to do (ks_act.ks_task). */
enum ks_task_kind { KS_TASK_NONE, KS_TASK_CALL, KS_TASK_CLAIM, KS_TASK_STANDBY, KS_TASK_IDLE };

struct ks_act {
	struct rseq ks_rseq;           /* 0: this kernel thread's rseq area; the kernel keeps its
					  cpu_id current, the trap reads it with a plain load */
	uint32_t ks_wake;              /* futex: 1 when ks_task is set */
	uint32_t ks_sleeping;          /* 1 while in futex_wait on ks_wake */
	pid_t ks_tid;
	int ks_role;
	uint64_t ks_fs;                /* the TLS base this activation wears now */
	void *ks_kstack_top;           /* its own stack (the "kernel stack" of a trap) */
	int ks_task_kind;
	void *ks_task;                 /* a mailbox (CALL, CLAIM) or a VP (STANDBY) */
	uint64_t ks_claim_s;           /* CLAIM: the call (tm_sys value) to take the VP from */
	int ks_claim_by;               /* CLAIM: the detector that sent it (enum sa_detector); a
					  blocked runner: the detector that took its VP */
	long ks_nvcsw;                 /* voluntary context switches when it became the runner */
	uint64_t ks_mask_applied;      /* a blocked runner: the mask its claimer gave the flow */
	struct ks_vp *ks_vp;           /* the VP it runs, or the VP of the call it executes */
	int ks_perf_fd;                /* the upcall detector's event on this thread, or -1 */
	bool ks_skip_pool;             /* born for a caller that gives it a task at once */
	bool ks_spin;                  /* may run on more than one CPU: spinning can pay off */
	bool ks_idle_class;            /* it runs at SCHED_IDLE (for good, without privilege) */
	struct ks_act *ks_next;        /* in the pool */
	struct ks_act *ks_all_next;    /* in the list of every activation */
};

struct ks_vp {
	struct sa_mailbox *ks_mbox;
	void *ks_kstack_top;           /* 8: the runner's own stack top (read by the trap) */
	struct ks_act *ks_runner;      /* the one activation running this VP's user code */
	uint64_t ks_fs;                /* the user context's TLS base: fixed for the VP's life */
	uint32_t ks_sb_cpu1;           /* 32: idle detector, read by the trap after T1: 0 no idle
					  standby; KS_SB_ASLEEP it sleeps; else its CPU + 1. The
					  trap kicks it (ks_idle_kick) unless this is its runner's
					  CPU + 1. */
	uint32_t ks_sb_pad;
	uint32_t ks_claiming;          /* one claimer at a time (CAS 0 -> 1) */
	uint32_t ks_parked;            /* futex: 1 while the runner sleeps in sa_release() */
	uint32_t ks_kicked;            /* sa_wakeup() on a VP that was not parked */
	int ks_detector;               /* enum sa_detector chosen for this VP */
	struct ks_act *ks_standby;     /* upcall detector: who receives this VP's signals */
	struct ks_act *ks_idle_sb;     /* idle detector: the VP's standby at SCHED_IDLE */
	int32_t ks_sb_pin;             /* the CPU the standby is pinned to, -1 none yet */
	uint64_t ks_idle_seen;         /* idle detector: the call (tm_sys) it sent a claimer for */
	struct sa_thr_mailbox *ks_idle_seen_mbox;
	uint64_t ks_wd_seen;           /* watchdog: tm_sys at its last look */
	struct sa_thr_mailbox *ks_wd_mbox;
	uint64_t ks_nsync_seen;        /* the last call counted in sa_nsync by a refused claim */
	uint64_t ks_wd_claimed;        /* watchdog: the call it already sent a claimer for */
	struct sa_thr_mailbox *ks_wd_claimed_mbox;
	struct sa_upcall ks_ev;        /* the upcall being delivered (one at a time per VP) */
	unsigned char ks_route[512];   /* per system call number: KS_ROUTE_* */
	struct ks_vp *ks_all_next;     /* in the list of every VP (for the watchdog) */
	int ks_dead;
	int ks_wd_fallback;            /* the upcall detector failed here: the watchdog watches */
	int ks_lazy;                   /* the detector for trapped calls: SA_DETECT_IDLE, _UPCALL
					  or _WATCHDOG (auto resolved), or KS_LAZY_NONE */
	uint32_t ks_refs;              /* activations that may still touch this VP without owning
					  it: inside ks_complete(), a dispatched claimer, the standby.
					  sa_free() waits for zero. */
};

/* How sa_syscall() runs a call of a given number (ks_vp.ks_route). */
enum { KS_ROUTE_DIRECT, KS_ROUTE_TRAP, KS_ROUTE_PROBE, KS_ROUTE_MOVE, KS_ROUTE_MOVE_ARGS,
       KS_ROUTE_REARM /* after fork(): set the detector up again, then route the call */ };
#define KS_LAZY_NONE (-1) /* ks_vp.ks_lazy of the probe and eager detectors: nothing is trapped */
void ks_routes_fill(struct ks_vp *vp);

#define KS_SIG_CANCEL (SIGRTMAX - 1) /* interrupts a background call (sa_interrupt) */
#define KS_SIG_UPCALL (SIGRTMAX - 2) /* the upcall detector's switch-out notice */
#define KS_SB_ASLEEP 0xffffffffu     /* ks_vp.ks_sb_cpu1: the idle standby sleeps */

/* trap.S */
void ks_wrfs(uint64_t base);
long ks_trap(long nr, long a1, long a2, long a3, long a4, long a5, long a6);
long ks_save_and_run(struct sa_context *ctx, void (*fn)(void *), void *arg, void *stack_top);
__attribute__((noreturn)) void ks_resume(const struct sa_context *ctx, long value);
__attribute__((noreturn)) void ks_run_on(void *stack_top, void (*fn)(void *), void *arg);
long ks_raw_syscall6(long nr, long a1, long a2, long a3, long a4, long a5, long a6);
long ks_cancellable_syscall(struct sa_thr_mailbox *m);
extern char ks_cancel_window_start[], ks_cancel_window_end[], ks_cancel_out[];
extern __thread struct sa_mailbox *ks_self_mb;
extern uint8_t ks_have_fsgsbase;
extern volatile uint32_t ks_wd_asleep;

/* tls.c: identity that follows the user context */
uint64_t ks_get_fs(void);
void ks_set_fs(uint64_t fs);
void ks_tls_init(void);
void ks_adopt_exit_tid(uint64_t fs);
bool ks_rseq_own(struct ks_act *act);
void ks_rseq_drop(struct ks_act *act);
extern bool ks_rseq_ok;

/* sigmask.c: the user context's signal mask, recorded in its TLS */
extern __thread uint64_t ks_umask __attribute__((tls_model("initial-exec")));
void ks_umask_init(void);
void ks_umask_refresh(void);
uint64_t ks_umask_of(uint64_t fs);
void ks_carry_pending(struct ks_vp *vp);
#define KS_SIGBIT(sig) (1ull << ((sig) - 1))

/* act.c: activations and the pool */
struct ks_act *ks_act_self_init(void);
struct ks_act *ks_act_get(void);
struct ks_act *ks_act_take(void);
int ks_spawner_start(void);
void ks_pool_request(unsigned n);
extern bool ks_spawn_failed;
#define KS_POOL_LOW 4 /* the spawner keeps this many spares for an idle standby's claims */
void ks_act_give(struct ks_act *act, int kind, void *task);
__attribute__((noreturn)) void ks_act_become_spare(struct ks_act *act);
void ks_pool_prefill(int n);
extern unsigned long ks_max_activations;
void ks_act_retire(struct ks_act *act);
void ks_acts_atfork_prepare(void);
void ks_acts_atfork_parent(void);
void ks_acts_atfork_child(void);
void ks_watchdog_atfork_child(void);
void ks_idle_atfork_child(void);

/* vp.c: completion, release, wakeup */
void ks_complete(struct ks_vp *vp, struct sa_thr_mailbox *m, long raw);
/* by: the detector that caught the block; moved: the call went to another activation (move.c),
 * else a spare took the VP from the blocked runner (claim.c) */
__attribute__((noreturn)) void ks_upcall_blocked(struct ks_vp *vp, struct sa_thr_mailbox *m, int by,
						 bool moved);
__attribute__((noreturn)) void ks_deliver(struct ks_vp *vp);
void ks_signals_init(void);
void ks_vp_register(struct ks_vp *vp);
extern struct ks_vp *ks_all_vps;
extern pthread_mutex_t ks_vps_lock;

/* claim.c */
bool ks_claim(struct ks_act *self, struct ks_vp *vp, struct sa_thr_mailbox *m, uint64_t s, int by);
void ks_membarrier_init(void);
void ks_after_lost(struct ks_vp *vp, struct sa_thr_mailbox *m, long raw);
void ks_count_sync(struct ks_vp *vp, uint64_t s);
void ks_count_handoff(struct ks_vp *vp, int by);
void ks_send_claimer(struct ks_act *spare, struct ks_vp *vp, struct sa_thr_mailbox *m, uint64_t s,
		     int by);

/* move.c: the moved-call direction */
long ks_move_call(struct ks_vp *vp, long nr, const long args[6], int by, long prefix);
void ks_run_moved_call(struct ks_act *act, struct sa_thr_mailbox *m);
long ks_with_prefix(long raw, long prefix);

/* hold.c: the files of a moved call, held outside the process's descriptor table */
/* On the caller, m's call and arguments set: the activation to give the call to. For a call
 * that does I/O on its descriptors, one that has taken their files into a table of its own
 * (m->tm_args then names them there; bit i of m->tm_dupfds: argument i was taken); NULL when
 * none can be had (the call then runs synchronously). */
struct ks_act *ks_hold_take(struct ks_vp *vp, struct sa_thr_mailbox *m);
/* On the activation that ran m's call, before its completion: let the files go. */
void ks_hold_release(struct ks_act *act, struct sa_thr_mailbox *m);
unsigned long ks_hold_parked(void); /* activations of the kind that take files, parked now */
bool ks_hold_applies(long nr);      /* a moved call nr has files a mover holds */
bool ks_act_may_create(void); /* act.c: one more activation may be born */

/* detectors */
/* 1: done without blocking (raw set); 0: would block (move it); -1: no probe for this fd;
 * 2: a partial result that is not the call's (raw: the bytes read; args: the rest to move) */
int ks_probe_try(long nr, long args[6], long *raw);
bool ks_probe_applies(long nr);
int ks_watchdog_start(void);
void ks_watchdog_kick(void);
int ks_upcall_available(const char **why);
int ks_upcall_arm(struct ks_vp *vp, struct ks_act *runner);
void ks_upcall_disarm(struct ks_act *act);
void ks_upcall_release(struct ks_act *act);
void ks_upcall_fallback(struct ks_vp *vp);
void ks_standby_loop(struct ks_act *act, struct ks_vp *vp);
void ks_upcall_park(struct ks_act *act, bool parking);
int ks_idle_available(const char **why);
int ks_idle_arm(struct ks_vp *vp);
void ks_idle_disarm(struct ks_vp *vp);
void ks_idle_kick(struct ks_vp *vp);
void ks_idle_loop(struct ks_act *act, struct ks_vp *vp);

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

/* counters */
struct ks_counters {
	unsigned long activations, spares, claims_won, claims_lost, moved, sync_fallback;
	unsigned long handoffs[SA_DETECT_COUNT]; /* per detector: blocked calls handed off */
	unsigned long idle_kicks;                /* the trap woke or moved the idle standby */
	unsigned long idle_class;                /* activations at SCHED_IDLE */
	unsigned long mask_stale;                /* a claim gave a flow an outdated signal mask */
};
extern struct ks_counters ks_stat;
#define KS_COUNT(field) __atomic_fetch_add(&ks_stat.field, 1, __ATOMIC_RELAXED)

/* futex.c */
int ks_futex_wait(uint32_t *word, uint32_t val, const struct timespec *abs_monotonic);
void ks_futex_wake(uint32_t *word, int n);
uint64_t ks_now_ns(void);
long ks_nvcsw(void);
bool ks_may_spin(void);
void ks_spin_pause(void);

#endif
