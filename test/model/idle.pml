/*
 * idle.pml - the idle detector's standby (kernel-shim/idle.c, the trap's check after T1 in
 * trap.S) in Promela for Spin: the part of the idle detector that is new concurrency. What the
 * standby does once it noticed a block (send a claimer) is the claim of handoff.pml, where a
 * detector may send claims at any time; it is not repeated here.
 *
 * Actors: the runner (its calls, each of which may block; it may move to the other CPU between
 * calls), the standby (SCHED_IDLE, pinned to one CPU), and a disarmer (sa_set_detector to
 * another detector, or sa_destroy) that runs once at any time.
 *
 * Memory: x86-TSO for the runner's plain T1 store to tm_sys: it sits in a one-entry store
 * buffer and the following load of ks_sb_cpu1 may overtake it. Locked instructions (the kick's
 * CAS), a membarrier by the standby, and blocking in the kernel (the scheduler's locks) drain it.
 *
 * The scheduler is the part that is assumed, not checked: the standby notices only when its
 * CPU has nothing else to run, i.e. the runner is blocked and was last on the standby's CPU.
 *
 * Properties:
 *   I1 no lost block: a runner blocked in a call is noticed while the standby is armed
 *      (a block that lasts until noticed would otherwise be an invalid end state)
 *   I2 a disarm sticks: nothing makes ks_sb_cpu1 non-zero again              assert
 *
 * Deliberately broken variants (spin -DNAME), each must be caught:
 *   IDLE_NO_MEMBARRIER  the standby goes to sleep without its membarrier
 *   IDLE_LOAD_BEFORE_T1 the trap loads ks_sb_cpu1 before its T1 store
 *   IDLE_KICK_STORE     the kick stores the CPU instead of a CAS (overwrites a disarm)
 */
#ifndef NCALL
#define NCALL 3
#endif
#define ASLEEP 3          /* KS_SB_ASLEEP; 1, 2: CPU 0, 1 plus one; 0: disarmed */

byte tm_sys;              /* m->tm_sys in memory */
byte cpu1 = 1;            /* vp->ks_sb_cpu1: armed, standby on CPU 0 */
byte pin;                 /* the CPU the standby is pinned to (vp->ks_sb_pin) */
byte rcpu;                /* the runner's CPU (its rseq cpu_id) */
bit  sleeper;             /* the standby sleeps in futex_wait(&ks_sb_cpu1, ASLEEP) */
bit  blocked;             /* the runner is blocked in the kernel */
bit  noticed;             /* the standby noticed the current block (and sent a claimer) */
bit  disarmed;            /* model: the disarmer has run */
bit  sb_full;             /* the runner's store buffer: one pending store to tm_sys */
byte sb_val;
byte cur;                 /* scratch of the runner's kick */

inline flush()
{
	if
	:: sb_full -> tm_sys = sb_val; sb_full = 0
	:: else -> skip
	fi
}

inline kick()
{
	/* ks_idle_kick: load ks_sb_cpu1; pin the standby to this CPU; CAS ks_sb_cpu1 to it and
	   wake a sleeper */
	cur = cpu1;
	if
	:: cur == 0 -> skip
	:: else ->
		pin = rcpu;
		atomic {
			flush();  /* a locked instruction drains the store buffer */
#ifdef IDLE_KICK_STORE
			cpu1 = rcpu + 1;
#else
			if
			:: cpu1 == cur -> cpu1 = rcpu + 1
			:: else -> cur = 0 /* lost the CAS: the next trap looks again */
			fi;
#endif
			if
			:: cur == ASLEEP -> sleeper = 0
			:: else -> skip
			fi
		}
	fi
}

active proctype runner()
{
	byte n = 0;
	do
	:: n < NCALL ->
		/* between calls it may move to the other CPU */
		if
		:: rcpu = 1 - rcpu
		:: skip
		fi;
#ifdef IDLE_LOAD_BEFORE_T1
		if
		:: cpu1 != 0 && cpu1 != rcpu + 1 -> kick()
		:: else -> skip
		fi;
		atomic { flush(); sb_full = 1; sb_val = 2 * n + 1 };   /* T1 */
#else
		atomic { flush(); sb_full = 1; sb_val = 2 * n + 1 };   /* T1, a plain store */
		if
		:: cpu1 != 0 && cpu1 != rcpu + 1 -> kick()             /* may overtake T1 */
		:: else -> skip
		fi;
#endif
		/* T2: the call returns at once, or blocks until the standby notices it */
		if
		:: skip
		:: atomic { flush(); blocked = 1; noticed = 0 };
		   (noticed || cpu1 == 0);                             /* I1 */
		   blocked = 0
		fi;
		atomic { flush(); sb_full = 1; sb_val = 2 * n + 2 };   /* T3 */
		n++
	:: else -> break
	od;
	atomic { flush() }
}

active proctype standby()
{
	byte want;
	do
	:: cpu1 == 0 -> break                                        /* disarmed: it leaves */
	:: cpu1 != 0 ->
		want = cpu1;
		if
		:: want != ASLEEP && want != 0 && want - 1 != pin -> pin = want - 1
		:: else -> skip
		fi;
		if
		:: tm_sys % 2 == 1 && rcpu != pin ->
			/* the runner is elsewhere: follow it */
			atomic { if :: cpu1 == want && want != 0 -> cpu1 = rcpu + 1; pin = rcpu
				     :: else -> skip fi }
		:: atomic { tm_sys % 2 == 1 && rcpu == pin && blocked && !noticed ->
			/* the CPU is idle because its runner blocked: notice (send a claimer; the
			   claim itself, and a call that ends meanwhile, are handoff.pml's) */
			noticed = 1 }
		:: tm_sys % 2 == 0 ->
			/* nothing in progress: sleep until kicked (unless the CAS fails) */
			if
			:: atomic { cpu1 == pin + 1 -> cpu1 = ASLEEP };
#ifndef IDLE_NO_MEMBARRIER
				flush();                              /* membarrier */
#endif
				if
				:: tm_sys % 2 == 1 -> skip
				:: else ->
					atomic { if :: cpu1 == ASLEEP -> sleeper = 1
						     :: else -> skip fi };
end_asleep:				(sleeper == 0)                /* futex_wait: a quiet
									 process may end here */
				fi;
				atomic { if :: cpu1 == ASLEEP -> cpu1 = pin + 1 :: else -> skip fi }
			:: atomic { cpu1 != pin + 1 -> skip }
			fi
		:: else -> skip                                       /* yield */
		fi
	od
}

active proctype disarmer()
{
	/* ks_idle_disarm: a seq_cst store of 0, then a futex wake; or never */
	if
	:: atomic { cpu1 = 0; disarmed = 1 };
	   sleeper = 0
	:: skip
	fi
}

/* I2: once disarmed, ks_sb_cpu1 stays 0 */
active proctype watch_disarm()
{
end:	do
	:: atomic { disarmed && cpu1 != 0 -> assert(false) }
	od
}
