/*
 * handoff.pml - the handoff protocol of docs/protocol.md as the C code implements it
 * (kernel-shim/trap.S, claim.c, act.c, move.c, vp.c), in Promela for Spin.
 * README.md beside this file maps every name here to the C code and explains each choice.
 *
 * Actors: NACT activations (kernel threads), each a process that changes role (runner of a
 * VP, blocked activation finishing a call, spare in the pool, claimer); a detector that tells
 * spares "the runner of vp looks blocked in call s" (it may be late, wrong, or say it twice:
 * safety must not depend on it); a waker calling sa_wakeup() once.
 *
 * Memory: x86-TSO where it matters. Every activation has a one-entry store buffer. The
 * runner's T3 store to tm_sys goes into it and the T4 load of tm_claim overtakes it; a locked
 * instruction (xchg, CAS) or a seq_cst store drains the issuer's buffer first. A call may sleep
 * in the kernel (asleep[a]): the switch out drains the sleeper's buffer, and the wakeup and the
 * switch back in are full barriers. At C2 the claimer confirms that the runner sleeps in its
 * call (kernel-shim/confirm.c: the kernel checks it under the run-queue lock after the
 * claimer's own fence), and otherwise refuses; where that cannot be told it falls back to
 * membarrier, which drains every buffer (MEMBARRIER_CMD_PRIVATE_EXPEDITED: every running thread
 * executes a full barrier; a thread that does not run has an empty buffer).
 *
 * Atomicity: one Promela step per interaction with other actors. Steps are merged where the C
 * code is one atomic instruction, where the merged part is invisible to the other actors until
 * the step ends, or where it is one side of a store/load (Dekker) pair whose both sides use
 * full barriers: the only outcome such a merge removes (each side sees the other's store)
 * ends in a futex_wake with nobody asleep, which the C loops absorb. README.md lists them.
 *
 * Properties:
 *   P1 at most one activation runs user code of a VP at a time        assert in enter_user
 *   P2 every call handed off is enqueued once and delivered once      asserts at T7, in drain,
 *                                                                     and at the end (init)
 *   P3 no lost wakeup                                                 invalid end states (a
 *      VP asleep without timeout is never an end state); ltl p3
 *   P4 UNBLOCKED(m) never before BLOCKED(m) has finished              assert in drain
 *   P5 no deadlock                                                    invalid end states
 *   also: a cancel interrupts only the call it cancels, and a call cancelled before it started
 *   reports ECANCELED without running; after T6 no two activations wear one TLS block.
 *
 * Deliberately broken variants (spin -DNAME); each must be caught:
 *   BROKEN_NO_MEMBARRIER     the claimer skips C2 (neither confirms nor pays a barrier)
 *   BROKEN_NO_VERDICT_RESET  a claim after a refused one does not clear the verdict at C1: a
 *                            runner that wakes may read the refusal and go on as the owner
 *                            while the new claim wins
 *   BROKEN_NO_CLAIM_LOCK     the claimer skips the C0 compare-and-swap
 *   BROKEN_EARLY_COMPLETION  the upcall handler drains sa_completed before it registers the
 *                            blocked mailbox
 *   BROKEN_PARK_NO_RECHECK   release skips R3
 * Variants that reproduce what was found wrong (README.md, "Findings"); each is caught:
 *   AS_WRITTEN_RECLAIM  the claimer of protocol.md (and claim.c's first cheap look): no check
 *                       that call s was already decided; sa_curthread is cleared only in
 *                       ks_deliver(), after C4 released ks_claiming, so a second claim of
 *                       the same call runs C1-C3 and either wins again or overwrites the
 *                       verdict s<<1|1 with s<<1
 *   AS_WRITTEN_WAKEUP   protocol.md's sa_wakeup(): CAS ks_parked first, set ks_kicked only if
 *                       the VP was not parked
 *   AS_WRITTEN_GIVE     protocol.md's moved call: "a release store, then wake ... futex if it
 *                       sleeps" (act.c uses seq_cst, which is right)
 *   AS_WRITTEN_CANCEL   vp.c settle_cancel(): the target goes on while the cancel signal may
 *                       still be pending, and the signal can interrupt its next call
 */

/* ---------------------------------------------------------------- sizes */
#ifndef NVP
#define NVP 2            /* virtual processors (the code below is written for 2) */
#endif
#ifndef NACT
#define NACT 3           /* activations: NVP runners at the start, the rest spares (<= 4) */
#endif
#ifndef NCALL
#define NCALL 3          /* system calls the user code makes: NCALL - NCALL/2 on VP 0 */
#endif
#ifndef NCLAIM
#define NCLAIM 2         /* claims the detector may send */
#endif
#ifndef NCANCEL
#define NCANCEL 1        /* sa_interrupt() calls */
#endif
#define MPV (NCALL + 1)  /* mailboxes per VP: the first flow, and a fresh one per handoff */
#define NMB (NVP * MPV)  /* all mailboxes; sa_completed is a bit set of them: NMB <= 8 */
#define NONE 255
#define BIT(x) (1 << (x))

#ifndef NO_SPARE_SPIN
#define SPARE_SPIN       /* a spare spins on ks_wake before it sleeps (AS_WRITTEN_GIVE needs it) */
#endif

/* tm_cstate (sa.h: enum SA_CALL_*) */
#define SA_CALL_NONE       0
#define SA_CALL_QUEUED     1
#define SA_CALL_RUNNING    2
#define SA_CALL_DONE       3
#define SA_CALL_CANCELLING 4
#define SA_CALL_CANCELLED  5

/* ks_task_kind (ks.h: enum ks_task_kind) */
#define KS_TASK_NONE  0
#define KS_TASK_CALL  1
#define KS_TASK_CLAIM 2

/* the result of a call, as ks_complete() gets it in `raw` */
#define R_OK        0
#define R_EINTR     1
#define R_ECANCELED 2

/* what a store buffer holds */
#define SB_EMPTY 0
#define SB_SYS   1   /* a store to tm_sys[sb_idx] */
#define SB_WAKE  2   /* a store to ks_wake[sb_idx] (AS_WRITTEN_GIVE) */

/* ---------------------------------------------------------------- shared words */
/* struct sa_thr_mailbox, one entry per mailbox m */
byte tm_sys[NMB];       /* m->tm_sys (the value in memory) */
byte tm_claim[NMB];     /* m->tm_claim */
byte tm_verdict[NMB];   /* m->tm_verdict: s<<1 | won */
byte tm_swapfs[NMB];    /* m->tm_swapfs: a TLS block */
byte tm_cstate[NMB];    /* m->tm_cstate: SA_CALL_* */
byte tm_act[NMB];       /* m->tm_act; NONE: the call was never handed off */

/* struct sa_mailbox and struct ks_vp, one entry per VP v */
byte sa_curthread[NVP]; /* mb->sa_curthread; NONE is NULL (during an upcall) */
byte sa_completed[NVP]; /* mb->sa_completed_head/tail (a wfcqueue): bit set of mailboxes */
bit  ks_claiming[NVP];  /* vp->ks_claiming */
bit  ks_parked[NVP];    /* vp->ks_parked (a futex word) */
bit  ks_kicked[NVP];    /* vp->ks_kicked */
byte ks_runner[NVP];    /* vp->ks_runner */
/* vp->ks_fs is the constant v: TLS block v is the one of the thread that called sa_create() */

/* struct ks_act, one entry per activation a */
bit  ks_wake[NACT];       /* act->ks_wake (a futex word) */
bit  ks_sleeping[NACT];   /* act->ks_sleeping */
byte ks_task_kind[NACT];  /* act->ks_task_kind */
byte ks_task[NACT];       /* act->ks_task: a mailbox */
byte ks_claim_s[NACT];    /* act->ks_claim_s */
byte ks_vp[NACT];         /* act->ks_vp */
byte ks_fs[NACT];         /* act->ks_fs: the TLS block it wears; activation a is born with a */
byte pool;                /* act.c `pool` (a LIFO under pool_lock): bit set of activations */

/* the kernel: futex sleepers, pending signals, store buffers */
bit  vp_futex_sleeper[NVP];   /* the runner of v sleeps in futex_wait(&vp->ks_parked) */
bit  act_futex_sleeper[NACT]; /* spare a sleeps in futex_wait(&act->ks_wake) */
bit  sig_pending[NACT];       /* KS_SIG_CANCEL sent to a (tgkill), not yet taken */
bit  asleep[NACT];            /* a sleeps in the kernel inside its call, off every CPU */
byte sb_kind[NACT];
byte sb_idx[NACT];
byte sb_val[NACT];

/* ---------------------------------------------------------------- model-only state */
byte calls_left[NVP];     /* calls the user code of v may still make */
byte claims_left = NCLAIM;
byte cancels_left = NCANCEL;
byte next_mb[NVP];        /* the next fresh mailbox of v (mailboxes of v: v*MPV ..) */
byte in_user[NVP];        /* activations running user code or the upcall of v        (P1) */
bit  blocked_done[NMB];   /* the upcall handler has processed BLOCKED(m)               (P4) */
bit  delivered[NMB];      /* UNBLOCKED(m) has been delivered                           (P2) */
bit  cancel_req[NMB];     /* the user called sa_interrupt(m) */
byte inflight[NVP];       /* background calls the user of v knows and has not seen end */
bit  kick_owed[NVP];      /* a sa_wakeup(v) has not yet ended one of v's releases */
bit  vp_done[NVP];        /* the user code of v has finished */
bit  release_forever[NVP];/* v's current release has no timeout                       (P3) */
hidden byte i;            /* scratch inside atomic steps */

#define OWNER_VP(m) ((m) / MPV)

/* ---------------------------------------------------------------- memory */
inline flush(x)
{
	if
	:: sb_kind[x] == SB_SYS -> tm_sys[sb_idx[x]] = sb_val[x]
	:: sb_kind[x] == SB_WAKE -> ks_wake[sb_idx[x]] = sb_val[x]
	:: else -> skip
	fi;
	sb_kind[x] = SB_EMPTY; sb_idx[x] = 0; sb_val[x] = 0
}

/* C2: membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) */
inline membarrier()
{
	for (i : 0 .. NACT - 1) { flush(i) };
	i = 0
}

/* ---------------------------------------------------------------- helpers */
/* ks_act_get() from the pool: any spare (the pool is a LIFO; any order is allowed here) */
inline take_spare(x)
{
	if
	:: pool & BIT(0) -> x = 0
	:: pool & BIT(1) -> x = 1
#if NACT > 2
	:: pool & BIT(2) -> x = 2
#endif
#if NACT > 3
	:: pool & BIT(3) -> x = 3
#endif
	fi;
	pool = pool & ~BIT(x)
}

/* the end of ks_act_give(): a seq_cst load of ks_sleeping, futex_wake(&ks_wake) if it is set */
inline wake_spare(x)
{
	if
	:: ks_sleeping[x] -> act_futex_sleeper[x] = 0
	:: else -> skip
	fi
}

/* The user level's UNBLOCKED handling of what was spliced from sa_completed (R6, or the end of
 * an upcall): sa_take_completed() and the handler's walk of sa_done. */
inline drain(w)
{
	for (i : 0 .. NMB - 1) {
		if
		:: sa_completed[w] & BIT(i) ->
			assert(blocked_done[i]);   /* P4: BLOCKED(m) has finished */
			assert(!delivered[i]);     /* P2: delivered once */
			delivered[i] = 1;
			inflight[w]--
		:: else -> skip
		fi
	};
	i = 0;
	sa_completed[w] = 0
}

/* The upcall BLOCKED(m) on v: ks_upcall_blocked() -> ks_deliver() (sa_curthread = NULL) ->
 * the handler, which registers m as a background handle, takes what is on sa_completed and
 * resumes the caller's saved context (EINPROGRESS) with a fresh mailbox current. */
inline blocked_upcall(w, x)
{
	sa_curthread[w] = NONE;
#ifndef BROKEN_EARLY_COMPLETION
	assert(!blocked_done[x]);
	blocked_done[x] = 1; inflight[w]++;
	drain(w);
#else
	drain(w);
	blocked_done[x] = 1; inflight[w]++;
#endif
	assert(next_mb[w] < MPV);
	sa_curthread[w] = w * MPV + next_mb[w];
	next_mb[w]++
}

/* an activation starts running user code of w: P1 */
inline enter_user(x, w)
{
	in_user[w]++;
	assert(in_user[w] == 1);        /* P1 */
	assert(ks_runner[w] == x);
	assert(ks_fs[x] == w)           /* it wears the user's TLS block, vp->ks_fs */
}

/* R6: ks_kicked = 0, splice sa_completed, ks_deliver(UNBLOCKED); the handler resumes the
 * flow that called sa_release() */
inline unblocked_upcall(w)
{
	if
	:: ks_kicked[w] -> kick_owed[w] = 0
	:: else -> skip
	fi;
	ks_kicked[w] = 0;
	release_forever[w] = 0;
	drain(w)
}

/* T9 / pool_put(), then wait_for_task(). Without SPARE_SPIN its spin is over at once:
 * ks_sleeping = 1 (seq_cst) and futex_wait(&ks_wake, 0), a value-checked sleep. */
inline park_spare()
{
#ifndef AS_WRITTEN_CANCEL
	assert(!sig_pending[a]);
#endif
	flush(a);
	pool = pool | BIT(a);
	v = 0; m = 0; s = 0; r = 0; b = 0; fin = 0;
#ifndef SPARE_SPIN
	ks_sleeping[a] = 1;
	if
	:: !ks_wake[a] -> act_futex_sleeper[a] = 1
	:: else -> skip
	fi
#endif
}

/* ks_complete() after the call's end, up to T7. settle_cancel(): CAS(tm_cstate, RUNNING ->
 * DONE), or, once a canceller is past its signal (no longer CANCELLING), store DONE. The
 * result. T7: enqueue on sa_completed, an xchg (a full barrier). (Settle and enqueue are one
 * step: only sa_interrupt() reads DONE, and answers ENOENT before or after the enqueue.) */
inline complete_call()
{
	if
	:: tm_cstate[m] == SA_CALL_RUNNING -> skip
	:: else ->
#ifndef AS_WRITTEN_CANCEL
		/* one system call here: a cancel signal still pending is delivered on its
		 * return, outside any window, and cannot reach this activation's next call */
		sig_pending[a] = 0;
#endif
		skip
	fi;
	tm_cstate[m] = SA_CALL_DONE;
	assert(r == R_OK || cancel_req[m]);   /* EINTR, ECANCELED only for a cancelled call */
	flush(a);
	assert(!(sa_completed[v] & BIT(m)) && !delivered[m]);   /* P2: enqueued once */
	sa_completed[v] = sa_completed[v] | BIT(m);
	r = 0; s = 0
}

#define CANCELLABLE(x) (cancels_left > 0 && OWNER_VP(x) == v && blocked_done[x] && \
			!delivered[x] && !cancel_req[x])
#define READY(w) (sa_completed[w] != 0 || ks_kicked[w])

/* ---------------------------------------------------------------- activations */
proctype act(byte a)
{
	byte v, m, s, r, b;   /* VP, mailbox, call (odd tm_sys), result, scratch */
	bit fin;              /* the release has a timeout */

	if
	:: a < NVP -> v = a; goto user
	:: else -> atomic { park_spare() }; goto spare_wait
	fi;

	/* ------------------------------------------------ user code of VP v */
user:
	do
	/* sa_syscall() routed to ks_trap (the upcall and watchdog detectors).
	 * T0: save the context in m (no shared word). T1: tm_sys = s, a plain store too, taken
	 * as visible at once: an observer that reads tm_sys before T1 reaches memory behaves as
	 * one that looked before T1, and the runner's own next visible act is T3. */
	:: atomic { calls_left[v] > 0 -> calls_left[v]--; m = sa_curthread[v];
		in_user[v]--; flush(a); s = tm_sys[m] + 1; tm_sys[m] = s }; goto trap
	/* sa_syscall() routed to ks_move_call (the probe said "would block", or eager).
	 * T0; ks_act_get(): a spare from the pool, or none at the limit (then the call runs
	 * here, synchronously, like syscall(2)). tm_act = spare, tm_cstate = QUEUED (release);
	 * move_and_upcall(): ks_vp, ks_act_give(): the task words, ks_wake = 1 (seq_cst), then
	 * a load of ks_sleeping and futex_wake if it is set. */
	:: atomic { calls_left[v] > 0 -> calls_left[v]--;
		if
		:: pool == 0 -> goto user
		:: else -> take_spare(b)
		fi;
		m = sa_curthread[v];
		tm_act[m] = b; tm_cstate[m] = SA_CALL_QUEUED;
		ks_vp[b] = v; ks_task_kind[b] = KS_TASK_CALL; ks_task[b] = m;
		flush(a);
#ifdef AS_WRITTEN_GIVE
		sb_kind[a] = SB_WAKE; sb_idx[a] = b; sb_val[a] = 1;   /* a plain store */
		if
		:: ks_sleeping[b] -> flush(a); act_futex_sleeper[b] = 0   /* the futex
			system call drains the store buffer before it wakes */
		:: else -> skip
		fi;
#else
		ks_wake[b] = 1;
		wake_spare(b);
#endif
		b = 0 }; goto moved_upcall
	/* sa_interrupt() of a background call this flow knows */
	:: atomic { CANCELLABLE(0) -> m = 0 }; goto cancel
	:: atomic { CANCELLABLE(1) -> m = 1 }; goto cancel
	:: atomic { CANCELLABLE(2) -> m = 2 }; goto cancel
	:: atomic { CANCELLABLE(3) -> m = 3 }; goto cancel
#if NMB > 4
	:: atomic { CANCELLABLE(4) -> m = 4 }; goto cancel
	:: atomic { CANCELLABLE(5) -> m = 5 }; goto cancel
	:: atomic { CANCELLABLE(6) -> m = 6 }; goto cancel
	:: atomic { CANCELLABLE(7) -> m = 7 }; goto cancel
#endif
	/* sa_release(timeout): wait for completions, or for the expected sa_wakeup().
	 * R1: spin a while on "completions or a kick"; if there are: R6 at once. */
	:: atomic { (inflight[v] > 0 || kick_owed[v]) ->
		if
		:: READY(v) -> unblocked_upcall(v)
		:: else ->   /* a timeout, or none */
			if
			:: fin = 1
			:: fin = 0; release_forever[v] = 1
			fi;
			goto R2
		fi }
	/* sa_take_completed(): the runner takes finished calls between threads, no upcall */
	:: atomic { sa_completed[v] != 0 -> drain(v) }
	/* nothing in flight: the thread may leave; its activation becomes a spare */
	:: atomic { inflight[v] == 0 && !kick_owed[v] ->
		in_user[v]--; vp_done[v] = 1; park_spare() }; goto spare_wait
	od;

	/* ------------------------------------------------ the trap (trap.S ks_trap) */
trap:
	/* The call may sleep in the kernel (a blocked call) or run through (one that does not
	 * block, or runs long without sleeping). Going to sleep drains the store buffer; waking
	 * is a full barrier. */
	if
	:: atomic { flush(a); asleep[a] = 1 };
	   asleep[a] = 0
	:: skip
	fi;
	/* T2: the call runs in the kernel, for any time (until this step is taken); a cancel
	 * signal taken between T1 and the syscall instruction (ks_trap_window) or during the
	 * call makes it EINTR. T3: tm_sys = s + 1, a plain store: into the store buffer.
	 * T4: c = tm_claim, a plain load that overtakes the buffered T3 store. */
	atomic {
		if
		:: sig_pending[a] -> sig_pending[a] = 0;
			assert(tm_cstate[m] == SA_CALL_CANCELLING ||
			       tm_cstate[m] == SA_CALL_CANCELLED);
			r = R_EINTR
		:: r = R_OK
		fi;
		flush(a); sb_kind[a] = SB_SYS; sb_idx[a] = m; sb_val[a] = s + 1;
		if
		:: tm_claim[m] != s -> goto owner   /* c != s: still the owner */
		:: else -> skip
		fi
	};
	/* T5: wait for the claimer's verdict on s; not won: the claimer backed off. Won: T6,
	 * wear the claimer's old TLS block (.Llost, ks_after_lost), then ks_complete(). */
	atomic {
		(tm_verdict[m] >> 1) == s;
		if
		:: !(tm_verdict[m] & 1) -> flush(a); enter_user(a, v); m = 0; s = 0; r = 0; goto user
		:: else -> skip
		fi;
		ks_fs[a] = tm_swapfs[m];
		for (i : 0 .. NACT - 1) { assert(i == a || ks_fs[i] != ks_fs[a]) };
		i = 0; s = 0
	};
	goto complete;
owner:
	/* back to the user stack with the result; the store buffer drains by now at the latest */
	atomic { flush(a); enter_user(a, v); m = 0; s = 0; r = 0 };
	goto user;

	/* ------------------------------------------------ ks_complete(), T9 */
complete:
	atomic { tm_cstate[m] != SA_CALL_CANCELLING -> complete_call() };
T8:
	/* T8: if ks_parked and CAS(ks_parked, 1 -> 0): futex_wake(&ks_parked) (the wake may
	 * come late and find a later sleep of the VP: the release loop copes) */
	atomic {
		if
		:: ks_parked[v] -> ks_parked[v] = 0; b = 1
		:: else -> b = 0
		fi;
		if
		:: !b -> park_spare(); goto spare_wait
		:: else -> skip
		fi
	};
	/* futex_wake; T9: back to the pool */
	atomic { vp_futex_sleeper[v] = 0; park_spare() };
	goto spare_wait;

	/* ------------------------------------------------ the moved call, runner side */
moved_upcall:
	/* ks_upcall_blocked(vp, m) on this activation: the VP never left it */
	atomic { flush(a); blocked_upcall(v, m); m = 0 };
	goto user;

	/* ------------------------------------------------ sa_interrupt() (claim.c) */
cancel:
	/* QUEUED: CAS to CANCELLED, the call will not run. RUNNING: CAS to CANCELLING and
	 * tgkill(tm_act, KS_SIG_CANCEL) (one step: the target waits while CANCELLING), then
	 * store CANCELLED. CANCELLING, CANCELLED: 0. DONE, NONE: ENOENT. */
	atomic {
		cancels_left--; cancel_req[m] = 1;
		flush(a);
		if
		:: tm_cstate[m] == SA_CALL_QUEUED -> tm_cstate[m] = SA_CALL_CANCELLED; m = 0; goto user
		:: tm_cstate[m] == SA_CALL_RUNNING -> tm_cstate[m] = SA_CALL_CANCELLING;
			sig_pending[tm_act[m]] = 1
		:: else -> m = 0; goto user
		fi
	};
	atomic { tm_cstate[m] = SA_CALL_CANCELLED; m = 0 };
	goto user;

	/* ------------------------------------------------ sa_release() (vp.c), R2-R6 */
R2:
	/* R2: xchg(ks_parked, 1), a full barrier. R3: completions or a kick? then R5, R6. */
	atomic {
		flush(a); ks_parked[v] = 1;
#ifndef BROKEN_PARK_NO_RECHECK
		if
		:: READY(v) -> ks_parked[v] = 0; unblocked_upcall(v); fin = 0; goto user
		:: else -> skip
		fi
#endif
	};
	/* R4: futex_wait(&ks_parked, 1, timeout): sleeps only if ks_parked is still 1 */
	atomic {
		if
		:: ks_parked[v] -> vp_futex_sleeper[v] = 1
		:: else -> skip
		fi
	};
	/* woken (or did not sleep), or the timeout. R5: CAS(ks_parked, 1 -> 0) (if it fails a
	 * waker cleared it). The C loop sleeps again after a wakeup that brought nothing. */
	if
	:: atomic { !vp_futex_sleeper[v] -> ks_parked[v] = 0;
		if
		:: READY(v) -> unblocked_upcall(v); fin = 0; goto user
		:: else -> goto R2
		fi }
	:: atomic { fin && vp_futex_sleeper[v] -> vp_futex_sleeper[v] = 0; ks_parked[v] = 0;
		unblocked_upcall(v); fin = 0; goto user }
	fi;

	/* ------------------------------------------------ a spare (act.c spare_main) */
spare_wait:
end_wait:
#ifdef SPARE_SPIN
	/* wait_for_task(): spin on ks_wake; or ks_sleeping = 1 (seq_cst) and
	 * futex_wait(&ks_wake, 0) */
	do
	:: atomic { ks_wake[a] && !act_futex_sleeper[a] -> ks_sleeping[a] = 0; break }
	/* the spin is over: ks_sleeping = 1 (seq_cst); if (!ks_wake) futex_wait(&ks_wake, 0).
	 * One step (README.md, "Atomicity"): the giver's side is seq_cst too. */
	:: atomic { !ks_wake[a] && !ks_sleeping[a] ->
		flush(a); ks_sleeping[a] = 1; act_futex_sleeper[a] = 1 }
	/* woken: ks_sleeping = 0, look again */
	:: atomic { ks_sleeping[a] && !act_futex_sleeper[a] -> ks_sleeping[a] = 0 }
#ifdef AS_WRITTEN_CANCEL
	:: atomic { sig_pending[a] -> sig_pending[a] = 0 }   /* taken here it does nothing */
#endif
	od;
#else
#ifdef AS_WRITTEN_CANCEL
	do
	:: atomic { sig_pending[a] -> sig_pending[a] = 0 }   /* taken here it does nothing */
	:: !act_futex_sleeper[a] -> break
	od;
#endif
#endif
	/* woken: ks_sleeping = 0, ks_wake = 0, take the task and begin it */
	atomic {
		!act_futex_sleeper[a] && ks_wake[a] ->
		ks_sleeping[a] = 0; ks_wake[a] = 0;
		v = ks_vp[a]; m = ks_task[a]; s = ks_claim_s[a]; b = ks_task_kind[a];
		ks_vp[a] = 0; ks_task[a] = 0; ks_claim_s[a] = 0; ks_task_kind[a] = KS_TASK_NONE;
		flush(a);
		if
		:: b == KS_TASK_CALL ->
			/* ks_run_moved_call(): CAS(tm_cstate, QUEUED -> RUNNING); if that fails
			 * it was cancelled first: ECANCELED, not run */
			b = 0;
			if
			:: tm_cstate[m] == SA_CALL_QUEUED -> tm_cstate[m] = SA_CALL_RUNNING
			:: else -> r = R_ECANCELED; goto complete
			fi
		:: b == KS_TASK_CLAIM ->
			/* ks_claim(): C0 CAS(ks_claiming, 0 -> 1), on failure give up; the
			 * cheap look (is m still current, in call s, and s undecided?) only
			 * reads: one step */
			b = 0;
#ifndef BROKEN_NO_CLAIM_LOCK
			if
			:: ks_claiming[v] -> park_spare(); goto spare_wait
			:: else -> skip
			fi;
#endif
			if
			:: sa_curthread[v] != m || tm_sys[m] != s -> park_spare(); goto spare_wait
#ifndef AS_WRITTEN_RECLAIM
			/* a call already won is not claimed again: its verdict was stored before
			 * ks_claiming was released (a refused one may be: it may block yet) */
			:: tm_verdict[m] == ((s << 1) | 1) -> park_spare(); goto spare_wait
#endif
			:: else -> ks_claiming[v] = 1; goto claim
			fi
		fi
	};
	/* ks_cancellable_syscall(): the pre-check in the window (CANCELLING or later: EINTR),
	 * a signal in the window or during the call (EINTR), or the call's own result; then
	 * ks_complete() (it waits while a canceller is CANCELLING: the call may end at any time
	 * before, which this step's options cover). */
	atomic {
		tm_cstate[m] != SA_CALL_CANCELLING;
		if
		:: tm_cstate[m] == SA_CALL_CANCELLED -> r = R_EINTR
		:: sig_pending[a] -> sig_pending[a] = 0;
			assert(tm_cstate[m] == SA_CALL_CANCELLED); r = R_EINTR
		:: r = R_OK
		fi;
		complete_call()
	};
	goto T8;

	/* ------------------------------------------------ ks_claim() (claim.c) */
claim:
	/* C1: no verdict yet (tm_verdict = 0), then tm_claim = s (plain stores; taken as visible
	 * at once: the fence of C2 drains them, and before that only the runner's T4/T5 read
	 * them). */
	atomic {
#ifndef BROKEN_NO_VERDICT_RESET
		tm_verdict[m] = 0;
#endif
		tm_claim[m] = s
	};
	/* C2: the runner sleeps in its call: go on, no barrier needed; it runs: refuse (verdict
	 * s<<1); cannot tell: membarrier. C3: x = tm_sys; x != s: lost, verdict s<<1. */
	atomic {
#ifndef BROKEN_NO_MEMBARRIER
		if
		:: asleep[ks_runner[v]] -> skip
		:: !asleep[ks_runner[v]] -> tm_verdict[m] = s << 1; ks_claiming[v] = 0;
			park_spare(); goto spare_wait
		:: membarrier()
		fi;
#endif
		if
		:: tm_sys[m] != s -> tm_verdict[m] = s << 1; ks_claiming[v] = 0;
			park_spare(); goto spare_wait
		:: else -> skip
		fi
	};
	/* C4: won. tm_swapfs = own TLS, tm_act = the blocked runner, tm_cstate = RUNNING,
	 * ks_runner = self, wear vp->ks_fs, verdict s<<1|1 (release), ks_claiming = 0 */
	atomic {
		b = ks_runner[v];
		tm_swapfs[m] = ks_fs[a];
		tm_act[m] = b;
		tm_cstate[m] = SA_CALL_RUNNING;
		ks_runner[v] = a;
		ks_fs[a] = v;
		tm_verdict[m] = (s << 1) | 1;
		ks_claiming[v] = 0;
		b = 0
	};
	/* C5: the user's identity (signal mask, exit tid), then the upcall BLOCKED(m) */
	atomic { enter_user(a, v); s = 0; blocked_upcall(v, m); m = 0 };
	goto user
}

/* ---------------------------------------------------------------- the detector */
/* "The runner of v looks blocked in call s": it read sa_curthread and an odd tm_sys and sends
 * a spare to claim (watchdog.c: ks_act_give(spare, KS_TASK_CLAIM, m); upcall.c's standby
 * claims itself). It may be late, wrong, and may send two claims for one call. */
#define LOOK(w) (claims_left > 0 && pool != 0 && sa_curthread[w] != NONE && \
		 (tm_sys[sa_curthread[w]] & 1))

inline send_claim(w)
{
	claims_left--;
	take_spare(b);
	ks_vp[b] = w;
	ks_task[b] = sa_curthread[w];
	ks_claim_s[b] = tm_sys[ks_task[b]];
	ks_task_kind[b] = KS_TASK_CLAIM;
	ks_wake[b] = 1;
	wake_spare(b);
	b = 0
}

proctype detector()
{
	byte b;
end_det:
	do
	:: atomic { LOOK(0) -> send_claim(0) }
	:: atomic { LOOK(1) -> send_claim(1) }
	od
}

/* ---------------------------------------------------------------- sa_wakeup() (vp.c) */
proctype waker()
{
	bit w;
#ifndef AS_WRITTEN_WAKEUP
	/* ks_kicked = 1 (seq_cst); CAS(ks_parked, 1 -> 0); futex_wake */
	ks_kicked[0] = 1;
	atomic {
		if
		:: ks_parked[0] -> ks_parked[0] = 0; w = 1
		:: else -> w = 0
		fi
	};
	if
	:: w -> vp_futex_sleeper[0] = 0
	:: else -> skip
	fi
#else
	/* protocol.md: CAS(ks_parked, 1 -> 0) then futex_wake; or, if the VP was not parked,
	 * set ks_kicked so that the next R3 returns at once */
	atomic {
		if
		:: ks_parked[0] -> ks_parked[0] = 0; w = 1;
			kick_owed[0] = 0   /* that release ends: the kick is served */
		:: else -> w = 0
		fi
	};
	if
	:: w -> vp_futex_sleeper[0] = 0
	:: else -> ks_kicked[0] = 1
	fi
#endif
}

/* ---------------------------------------------------------------- start and final check */
init
{
	atomic {
		for (i : 0 .. NMB - 1) { tm_act[i] = NONE };
		for (i : 0 .. NVP - 1) {
			sa_curthread[i] = i * MPV; next_mb[i] = 1;
			ks_runner[i] = i; in_user[i] = 1
		};
		for (i : 0 .. NACT - 1) { ks_fs[i] = i };
		i = 0;
		calls_left[0] = NCALL - NCALL / 2; calls_left[1] = NCALL / 2;
		kick_owed[0] = 1;   /* the waker kicks VP 0 once */
		run detector(); run waker();
		run act(0); run act(1);
#if NACT > 2
		run act(2);
#endif
#if NACT > 3
		run act(3);
#endif
	};
	/* every VP done: every call handed off was delivered (P2) */
	(vp_done[0] && vp_done[1]);
	atomic {
		for (i : 0 .. NMB - 1) {
			assert(tm_act[i] == NONE || (blocked_done[i] && delivered[i]))
		};
		for (i : 0 .. NVP - 1) { assert(sa_completed[i] == 0 && inflight[i] == 0) };
		i = 0
	}
}

/* P3 as liveness: a VP asleep in a release without timeout while completions wait is woken.
 * (With -a -f; a lost wakeup shows as an acceptance cycle, or as a stutter of a deadlock.) */
ltl p3 {
	[] ((vp_futex_sleeper[0] && release_forever[0] && sa_completed[0] != 0) ->
	    <> !vp_futex_sleeper[0]) &&
	[] ((vp_futex_sleeper[1] && release_forever[1] && sa_completed[1] != 0) ->
	    <> !vp_futex_sleeper[1])
}
