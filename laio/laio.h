/*
 * laio.h - Lazy Asynchronous I/O (Elmeleegy, Chanda, Cox, Zwaenepoel, USENIX ATC 2004).
 *
 * laio_syscall() runs any system call synchronously. Only if the call actually blocks does it
 * return -1 with errno == EINPROGRESS at once; the call then finishes in the background and
 * laio_poll() reports it, once, in its entirety. Each thread that uses LAIO has its own virtual
 * processor and its own completions. Link with `pkg-config --libs laio`.
 *
 * Man pages: laio_syscall(3), laio_syscall_r(3), laio_gethandle(3), laio_in_flight(3),
 * laio_poll(3), laio_fd(3), laio_cancel(3), laio_stats(3), laio_init(3).
 */
#ifndef LAIO_H
#define LAIO_H

/* The version of the library these declarations belong to (liblaio.so.0: symbols LAIO_0.1, and
 * LAIO_0.2 for laio_syscall_r(), laio_in_flight() and the longer laio_config and laio_stats). */
#define LAIO_VERSION_MAJOR 0
#define LAIO_VERSION_MINOR 1
#define LAIO_VERSION_PATCH 0
#define LAIO_VERSION "0.1.0"

#include <stddef.h>
#include <time.h>

/* Strict ISO C99 (-std=c99, no POSIX feature macro) has a <time.h> without struct timespec; the
 * declaration gives laio_poll()'s parameter file scope there, so the header stays warning-free
 * and a program that defines _POSIX_C_SOURCE gets the same type. */
struct timespec;

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default) /* the library is built with -fvisibility=hidden */

/* One finished background call (the paper's Figure 1, with a 64-bit return value). */
struct laio_completion {
	void *laio_handle;       /* what laio_gethandle() named when the call went background */
	long laio_return_value;  /* the call's return value, -1 on error */
	int laio_errno;          /* 0, or the call's errno */
};

/*
 * Run system call `number` with up to six arguments, exactly as syscall(2) would. If it does not
 * block: syscall()'s result and errno. If it blocks: -1 with errno == EINPROGRESS, at once; the
 * buffers passed by reference belong to the call until laio_poll() reports it.
 */
long laio_syscall(long number, ...);

/*
 * laio_syscall(), and the call's handle in *handle (if handle is not NULL): the handle if the
 * call returned EINPROGRESS, else NULL. Nothing that runs after the call can change it, whereas
 * a signal handler that calls laio_syscall() between a call and laio_gethandle() changes what
 * laio_gethandle() returns: use this form in code that signal handlers may interrupt and in the
 * handlers themselves.
 */
long laio_syscall_r(void **handle, long number, ...);

/* The handle of the calling thread's most recent laio_syscall() if it returned EINPROGRESS;
 * NULL if that call did not block (or there was none). */
void *laio_gethandle(void);

/*
 * Fill up to `ncompletions` entries with finished background calls of the calling thread and
 * return how many. If none is ready, wait up to `timeout` (NULL: forever; zero: do not wait);
 * 0 on timeout. -1 with errno EINVAL for a negative count, an invalid timespec, or a NULL array
 * with a positive count. A reported handle may be reused by a later call.
 */
int laio_poll(struct laio_completion completions[], int ncompletions,
	      const struct timespec *timeout);

/* An eventfd that is readable while the calling thread has completions waiting (for epoll,
 * libevent, libuv). Owned by the library: do not close it. -1 and errno on failure. */
int laio_fd(void);

/*
 * Interrupt a background call of the calling thread. Its completion then reports EINTR (or
 * ECANCELED if it had not started executing). 0 on success; -1 with errno ENOENT if the handle
 * already finished (its completion is waiting or was reported), EINVAL if it is not a handle of
 * the calling thread's.
 */
int laio_cancel(void *handle);

/*
 * Whether `handle` names a background call of the calling thread that laio_poll() has not
 * reported yet: 1 if so, 0 if not (its call was reported, and a later call may be given the
 * handle); -1 with errno EINVAL if it is not a handle of the calling thread's.
 */
int laio_in_flight(const void *handle);

/* Block detectors (see laio_init(3)). */
enum laio_detector {
	LAIO_DETECT_AUTO = 0,  /* idle where it works, else probe where a call has a non-blocking
				  form and watchdog for the others */
	LAIO_DETECT_UPCALL,    /* kernel notice on switch-out (perf context-switch event) */
	LAIO_DETECT_PROBE,     /* try the non-blocking form; hand the call off if it would block */
	LAIO_DETECT_WATCHDOG,  /* a monitor thread sees the same call in progress twice */
	LAIO_DETECT_EAGER,     /* always hand off: every call goes to the background */
	LAIO_DETECT_IDLE,      /* a standby at SCHED_IDLE on the caller's CPU: the kernel's scheduler
				  runs it exactly when the call blocked */
	LAIO_DETECT_COUNT
};

struct laio_config {
	enum laio_detector detector; /* LAIO_DETECTOR=auto|idle|upcall|probe|watchdog|eager */
	int max_inflight;            /* LAIO_MAX_INFLIGHT; background calls per thread; 0: default */
	int trace;                   /* LAIO_TRACE=1: print each upcall and handle transition */
	const char *trace_file;      /* LAIO_TRACE_FILE=path: write a timeline of the thread's calls
					and upcalls there (Chrome trace-event JSON, docs/tracing.md);
					NULL: the environment's */
	int cgroup;                  /* LAIO_CGROUP=0|1: a cpu cgroup of the thread's own, where
					the process may make one (laio_init(3)); 1 on, -1 off, 0
					the environment's (off unless LAIO_CGROUP=1) */
};

/*
 * Optional: configure the calling thread's LAIO before its first call. Fields left zero take
 * the environment's value or the default. 0, or -1 with errno: EINVAL (bad value), ENOTSUP
 * (the detector cannot work here), EBUSY (the thread already has calls in flight).
 */
int laio_init(const struct laio_config *config);

/* The name of the detector the calling thread uses for calls of `number` ("probe", ...). */
const char *laio_detector_name(long number);

struct laio_stats {
	unsigned long calls;          /* laio_syscall() calls */
	unsigned long blocked;        /* calls that returned EINPROGRESS */
	unsigned long upcalls;        /* upcalls delivered (blocked and unblocked) */
	unsigned long completed;      /* background calls reported by laio_poll() */
	unsigned long in_flight;      /* background calls not yet reported */
	unsigned long peak_in_flight; /* the most in flight at once */
	unsigned long sync_at_limit;  /* calls that blocked and ran synchronously: at the in-flight
					 limit, or no kernel thread could be had (laio_stats(3)) */
	unsigned long cancelled;      /* laio_cancel() calls that took effect */
	unsigned long handoffs[LAIO_DETECT_COUNT]; /* blocked calls, by the detector that found
						      them (index: enum laio_detector) */
	unsigned long spurious[LAIO_DETECT_COUNT]; /* false alarms caught: claims refused because
						      the thread was not asleep in its call; none
						      went to the background (laio_stats(3)) */
	unsigned long sync_inflight;  /* of sync_at_limit: the thread was at its in-flight limit */
	unsigned long sync_no_thread; /* of sync_at_limit: no kernel thread could be had for it */
	unsigned long max_inflight;   /* the in-flight limit in effect (clamped to what the system
					 allows: laio_init(3)) */
	const char *cgroup;           /* "v1" or "v2": the thread has a cpu cgroup of its own
					 (laio_init(3)); "off": it has none */
	const char *cgroup_why;       /* where that cgroup is, or why there is none */
};

/* The calling thread's counters. */
void laio_stats(struct laio_stats *stats);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
