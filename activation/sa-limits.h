/*
 * sa-limits.h - the limits that turn calls synchronous: how many kernel threads this process may
 * have, and saying so, once, when a limit first does it (internal).
 */
#ifndef SA_LIMITS_H
#define SA_LIMITS_H

/* What made a blocked call run synchronously (or will). */
enum sa_limit {
	SA_LIMIT_INFLIGHT,     /* a thread's in-flight limit (LAIO_MAX_INFLIGHT, max_inflight) */
	SA_LIMIT_ACTIVATIONS,  /* the process's activations (LAIO_MAX_ACTIVATIONS) */
	SA_LIMIT_CREATE,       /* the system refused a new kernel thread (RLIMIT_NPROC, ...) */
	SA_LIMIT_COUNT
};

/* The most kernel threads this process may have: the least of pid_max, threads-max and, unless
 * the process is exempt from it, RLIMIT_NPROC. *which names that limit (a static string). */
unsigned long sa_thread_room(const char **which);

/* Say on stderr, once per process and kind, that calls that block run synchronously now.
 * `value`: the limit (SA_LIMIT_INFLIGHT, SA_LIMIT_ACTIVATIONS) or the errno (SA_LIMIT_CREATE).
 * No stdio stream and no allocation: the shim's threads call it. */
void sa_limit_notice(enum sa_limit kind, unsigned long value);

#endif
