/*
 * idle.pml - the idle detector's standbys (kernel-shim/idle.c: one per CPU, pinned once) and the
 * trap's kick after T1 (trap.S, T1k), in Promela for Spin: the part of the idle detector that is
 * new concurrency. What a standby does once it noticed a block (send a claimer, which confirms
 * that the runner sleeps) is the claim of handoff.pml; here a notice is taken as exact.
 *
 * Actors: the runner (its calls, each of which may block; it may move to the other CPU between
 * calls and, with MIGRATE, between the trap's load of its CPU and the system call), a standby
 * per CPU (SCHED_IDLE, pinned), and with BACKSTOP the watchdog's backstop.
 *
 * Memory: x86-TSO for the runner's plain T1 store to tm_sys: it sits in a one-entry store
 * buffer and the trap's T1k load of ks_kick[cpu] may overtake it. Locked instructions (the
 * kick's CAS), a standby's membarrier, and blocking in the kernel drain it.
 *
 * rseq: `seen` is the runner's CPU as rseq's cpu_id shows it, `real` where it runs. The kernel
 * writes cpu_id only on the way back to user space: a runner that moves inside the kernel keeps
 * showing the old CPU until its call returns.
 *
 * The scheduler is the part that is assumed, not checked: a standby that finds a call in
 * progress on its CPU notices it only if the runner really sleeps (the claim's confirmation);
 * otherwise a standby may run at any time (an idle-class thread gets a sliver of a busy CPU).
 *
 * Property: no lost block. A blocked runner waits until it is noticed; a block nobody will
 * notice ends with every standby asleep: an invalid end state.
 *
 * Runs (test/model/run.sh): with and without MIGRATE the standbys alone notice every block (a
 * runner that moved after T1k still shows the CPU whose standby it kicked, and that standby
 * sees it); BACKSTOP adds the watchdog, for a CPU that never goes idle (not modelled: here a
 * standby may always run). Deliberately broken variants, each caught:
 *   IDLE_NO_MEMBARRIER  a standby goes to sleep without its membarrier
 *   IDLE_LOAD_BEFORE_T1 the trap loads ks_kick before its T1 store
 *   IDLE_NO_RECHECK     a standby sleeps without looking again after announcing it (I3)
 */
#ifndef NCALL
#define NCALL 3
#endif
#define AWAKE 0
#define ASLEEP 1

byte tm_sys;              /* m->tm_sys in memory */
bit  sb_full;             /* the runner's store buffer: one pending store to tm_sys */
byte sb_val;
bit  seen;                /* the runner's rseq cpu_id */
bit  real;                /* the CPU it really runs on */
bit  blocked;             /* the runner sleeps in the kernel */
bit  noticed;             /* the current block was noticed (a claimer was sent) */
byte state[2];            /* standby c: AWAKE or ASLEEP (its futex word) */
bit  kickw[2];            /* ks_kick[c]'s idle bit */
bit  sleeper[2];          /* standby c sleeps in futex_wait */
bit  c_seen;              /* scratch of the trap: the CPU it loaded */

inline flush()
{
	if
	:: sb_full -> tm_sys = sb_val; sb_full = 0
	:: else -> skip
	fi
}

/* T1k: the trap loads ks_kick[cpu] and, if set, kicks the standby of that CPU (a CAS) */
inline trap_kick()
{
	c_seen = seen;
	if
	:: kickw[c_seen] ->
		atomic {
			flush(); /* the CAS is a locked instruction */
			if
			:: state[c_seen] == ASLEEP -> state[c_seen] = AWAKE; kickw[c_seen] = 0;
				sleeper[c_seen] = 0
			:: else -> skip
			fi
		}
	:: else -> skip
	fi
}

active proctype runner()
{
	byte n = 0;
	do
	:: n < NCALL ->
		/* between calls it may run on the other CPU (and rseq says so) */
		if
		:: atomic { real = 1 - real; seen = real }
		:: skip
		fi;
#ifdef IDLE_LOAD_BEFORE_T1
		trap_kick();
		atomic { flush(); sb_full = 1; sb_val = 2 * n + 1 };   /* T1 */
#else
		atomic { flush(); sb_full = 1; sb_val = 2 * n + 1 };   /* T1, a plain store */
		trap_kick();                                           /* T1k may overtake it */
#endif
#ifdef MIGRATE
		/* preempted and moved before the syscall instruction: rseq is not rewritten */
		if
		:: real = 1 - real
		:: skip
		fi;
#endif
		/* T2: the call returns at once, or blocks until it is noticed */
		if
		:: skip
		:: atomic { flush(); blocked = 1; noticed = 0 };
		   noticed;
		   blocked = 0
		fi;
		atomic { flush(); sb_full = 1; sb_val = 2 * n + 2; seen = real }; /* T3, to user */
		n++
	:: else -> break
	od;
	atomic { flush() }
}

/* In progress on CPU c as a standby sees it: a call (tm_sys odd) of a runner rseq puts on c. */
#define IN_PROGRESS(c) (tm_sys % 2 == 1 && seen == (c))

proctype standby(bit c)
{
end_loop:
	do
	/* I1: a call in progress on c while c is idle: its runner left c; propose a claim (the
	   claim confirms the sleep: a runner that runs elsewhere is refused, not noticed) */
	:: atomic { IN_PROGRESS(c) && blocked && !noticed -> noticed = 1 }
	:: atomic { IN_PROGRESS(c) && !blocked -> skip }   /* refused, or it yields to the runner */
	/* I2: nothing in progress on c: announce the sleep */
	:: atomic { !IN_PROGRESS(c) && state[c] == AWAKE ->
		state[c] = ASLEEP; kickw[c] = 1 };
#ifndef IDLE_NO_MEMBARRIER
		flush();                                               /* membarrier */
#endif
		/* I3: look again; then sleep until a kick */
		if
#ifndef IDLE_NO_RECHECK
		:: atomic { IN_PROGRESS(c) -> state[c] = AWAKE; kickw[c] = 0 }
		:: atomic { !IN_PROGRESS(c) ->
#else
		:: atomic { true ->
#endif
			if
			:: state[c] == ASLEEP -> sleeper[c] = 1
			:: else -> skip
			fi };
end_asleep:	   (sleeper[c] == 0);                            /* futex_wait: a quiet
								   process may end here */
		   atomic { state[c] = AWAKE; kickw[c] = 0 }
		fi
	od
}

#ifdef BACKSTOP
/* The watchdog's backstop: a call still in progress at its later look is claimed. */
active proctype backstop()
{
end:	do
	:: atomic { blocked && !noticed -> noticed = 1 }
	od
}
#endif

init
{
	atomic { run standby(0); run standby(1) }
}
