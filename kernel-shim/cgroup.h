/*
 * cgroup.h - one cpu cgroup per virtual processor (internal to the shim).
 *
 * Why: a SCHED_IDLE thread is idle only relative to its siblings in its cpu cgroup. The idle
 * standby of a VP, put in a cgroup of its own with the kernel thread that runs the VP, gets the
 * group's share of the CPU the moment the runner blocks, whatever else runs on the machine: the
 * VP keeps its processor, as in Anderson et al.'s design. Outside such a group the standby runs
 * only when nothing else on the machine wants the CPU.
 *
 * Layout: the cgroup the process is in when ks_cg_init() runs (its "base", in the cgroup v1
 * 'cpu' hierarchy or the cgroup v2 unified one) gets one directory of the process's own,
 * laio.<pidns>.<pid>.<starttime>, and that directory one vp<N> per VP group. Everything is
 * nested under the base, so every limit of the base and its ancestors still applies.
 *
 * Synchronisation: ks_cg_init() runs once, before any other call. ks_cg_new(), ks_cg_free() and
 * ks_cg_fini() take a lock of their own. ks_cg_enter() and ks_cg_leave() are one write() each, on
 * a descriptor opened before; they take no lock, allocate nothing, leave errno alone and are
 * async-signal-safe: they may run on any thread, whatever TLS it wears. A group must not be
 * entered once ks_cg_free() has been called on it.
 */
#ifndef KS_CGROUP_H
#define KS_CGROUP_H

#include <sys/types.h>

struct ks_cg;

/* Which hierarchy ks_cg_init_as() may use. */
enum ks_cg_want {
	KS_CG_AUTO,       /* cgroup v1 if 'cpu' is bound to a v1 hierarchy, else v2 */
	KS_CG_V1,         /* cgroup v1 'cpu' only */
	KS_CG_V2,         /* cgroup v2 only, with the cpu controller */
	KS_CG_V2_NOCPU,   /* cgroup v2 threaded mode even without the cpu controller: the moves,
			     the nesting and the clean-up, without their effect on scheduling.
			     Lets the v2 path be exercised where 'cpu' is bound to v1. */
};

/* Once per process: decide whether per-VP cpu cgroups can be used here, and prepare them. With
 * enable == 0 they are not (the caller reads LAIO_CGROUP). Finds the process's cpu cgroup (the
 * base), removes the directories that dead processes left in it, creates the process's own
 * directory (v2: threaded, '+cpu' in the base's and its own cgroup.subtree_control) and checks
 * that the calling thread may be moved back to the base. Returns 1 when in use, 0 when not;
 * *why (when why is not NULL) is a human-readable reason either way. A later call returns the
 * first decision. Registers ks_cg_fini() with atexit(). */
int ks_cg_init(int enable, const char **why);
int ks_cg_init_as(int enable, enum ks_cg_want want, const char **why);

/* "v1", "v2" or "off". */
const char *ks_cg_mode(void);

/* The base's directory ("" when off), the process's own directory ("" while it has none). */
const char *ks_cg_base_dir(void);
const char *ks_cg_proc_dir(void);

/* A cgroup for one VP under the process's directory (created again if the last VP removed it),
 * with the kernel's default cpu weight; the process's directory weighs as many threads of the
 * process's nice value as it has VP groups. Keeps the file a tid is written to ('tasks' on v1,
 * 'cgroup.threads' on v2) open. NULL with errno on failure (ENODEV when not in use, or the
 * error of mkdir/open/write). */
struct ks_cg *ks_cg_new(void);

/* Its directory, e.g. /sys/fs/cgroup/cpu/laio.4026531836.812.5566/vp0. */
const char *ks_cg_dir(const struct ks_cg *g);

/* Move thread tid (0: the calling thread) into g: one write(). 0 or -errno as the kernel gives
 * it (ESRCH: no such thread; EBADF: not in use). */
int ks_cg_enter(struct ks_cg *g, pid_t tid);

/* Move thread tid (0: the calling thread) back to the base: one write(). 0 or -errno. */
int ks_cg_leave(pid_t tid);

/* Move the threads still in g to the base, remove its directory, free it; the last one removes
 * the process's directory too. Errors are ignored: a directory that cannot be removed is left to
 * the next ks_cg_init() of a later process. A group made before a fork() is only forgotten in
 * the child (its directory is the parent's). */
void ks_cg_free(struct ks_cg *g);

/* In a fork() child: move the calling thread (the child's only one) back to the base, and forget
 * the parent's directories without removing them. The child makes directories of its own at its
 * next ks_cg_new(). */
void ks_cg_atfork_child(void);

/* Move every thread out of the process's VP groups and remove them and the process's directory
 * (v2: and take '-cpu' back from the base if this process had added it and nothing else needs
 * it). Registered with atexit() by ks_cg_init(); may be called earlier, and then ks_cg_new()
 * makes the directory again. */
void ks_cg_fini(void);

#endif
