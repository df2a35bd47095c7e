/*
 * laio.c - the LAIO API (laio.h) on the scheduler-activations interface (activation/sa.h).
 *
 * Per thread, as the paper's library was per process: the first LAIO call of a thread makes it
 * a virtual processor (sa_create, the paper's kse_create(&mb, 0) in laio_init()).
 */
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <errno.h>
#include <stddef.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "laio-internal.h"
#include "../activation/sa-limits.h"

#define LAIO_DEFAULT_MAX_INFLIGHT 4096

/* initial-exec: the fast path reads it with one %fs-relative load, no __tls_get_addr() call in
 * liblaio.so (the library is linked at start-up, not dlopen()ed late) */
static __thread struct laio_state *self __attribute__((tls_model("initial-exec")));
static pthread_key_t exit_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t dead_lock = PTHREAD_MUTEX_INITIALIZER;
static struct laio_state *dead;   /* states of exited threads, kept while calls are in flight */

/* ---- per-thread state ---- */

static void state_free(struct laio_state *ls)
{
	sa_free(&ls->mb);
	while (ls->chunks) {
		struct laio_chunk *c = ls->chunks;
		ls->chunks = c->next;
		free(c);
	}
	if (ls->efd >= 0)
		close(ls->efd);
	free(ls->upcall_stack);
	free(ls);
}

/* States of exited threads whose background calls have all finished are freed; the others wait
 * on the dead list (their blocked activations still complete onto their mailboxes). */
static void sweep_dead(void)
{
	for (struct laio_state **p = &dead; *p;) {
		struct laio_state *ls = *p;
		laio_completed_append(ls, sa_take_completed(&ls->mb), false);
		while (ls->completed_head) {
			struct laio_handle *h = ls->completed_head;
			ls->completed_head = h->next;
			ls->st.in_flight--;
		}
		ls->completed_tail = NULL;
		if (ls->st.in_flight == 0) {
			*p = ls->dead_next;
			state_free(ls);
		} else {
			p = &ls->dead_next;
		}
	}
}

/* Set while this thread is inside LAIO: in laio_syscall() or laio_poll(), setting its state up
 * or tearing it down (for good, at exit). A signal handler that calls laio_syscall() then must
 * not touch what the interrupted code is changing: its call runs synchronously, as syscall()'s
 * would; laio_poll() there fails with EDEADLK. (TLS follows the flow, like the state does.) */
static __thread int inside __attribute__((tls_model("initial-exec")));

static void on_thread_exit(void *arg)
{
	struct laio_state *ls = arg;
	inside = 1; /* for good: the thread is ending */
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	laio_trace(ls, "thread exits with %lu call(s) in flight", ls->st.in_flight);
	/* the state outlives the thread on the dead list, unseen: it traces no more */
	sa_tl_buf_free(ls->tl);
	ls->tl = NULL;
	ls->trace = ls->traced = 0;
	sa_destroy(&ls->mb);
	self = NULL;
	pthread_mutex_lock(&dead_lock);
	ls->dead_next = dead;
	dead = ls;
	sweep_dead();
	pthread_mutex_unlock(&dead_lock);
}

/* fork(): the child's copy of this thread keeps its completions; its background calls run only
 * in the parent, so in the child they complete with ECANCELED. Its eventfd is the parent's:
 * the child gets its own at its next laio_fd(). */
static void atfork_child(void)
{
	struct laio_state *ls = self;
	pthread_mutex_init(&dead_lock, NULL);
	if (!ls)
		return;
	laio_completed_append(ls, sa_take_completed(&ls->mb), false);
	for (struct laio_chunk *c = ls->chunks; c; c = c->next)
		for (int i = 0; i < LAIO_CHUNK; i++) {
			struct laio_handle *h = &c->h[i];
			if (h->state != H_BACKGROUND)
				continue;
			h->tm.tm_retval = -1;
			h->tm.tm_errno = ECANCELED;
			h->tm.tm_cstate = SA_CALL_DONE;
			h->tm.tm_link = NULL;
			laio_completed_append(ls, &h->tm, false);
		}
	if (ls->efd >= 0) {
		close(ls->efd);
		ls->efd = -1;
		__atomic_fetch_and(&ls->mb.sa_flags, ~SA_NOTIFY, __ATOMIC_RELAXED);
	}
}

static void make_key(void)
{
	pthread_key_create(&exit_key, on_thread_exit);
	pthread_atfork(NULL, NULL, atfork_child);
}

static struct laio_state *state_new(void)
{
	struct laio_state *ls = calloc(1, sizeof(*ls));
	if (!ls)
		return NULL;
	ls->upcall_stack = malloc(LAIO_UPCALL_STACK);
	if (!ls->upcall_stack || !laio_pool_grow(ls)) {
		free(ls->upcall_stack);
		free(ls);
		return NULL;
	}
	ls->efd = -1;
	ls->mb.sa_func = laio_upcall;
	ls->mb.sa_stack = ls->upcall_stack;
	ls->mb.sa_stacksize = LAIO_UPCALL_STACK;
	ls->mb.sa_notify_fd = -1;
	ls->mb.sa_udata = ls;
	if (sa_create(&ls->mb) < 0) {
		free(ls->upcall_stack);
		free(ls);
		return NULL;
	}
	ls->current_handle = laio_handle_alloc(ls);
	long mi = laio_env_long("LAIO_MAX_INFLIGHT", 1, INT_MAX, LAIO_DEFAULT_MAX_INFLIGHT);
	ls->max_inflight = laio_clamp_inflight(mi, mi == LAIO_DEFAULT_MAX_INFLIGHT ? NULL
								     : "LAIO_MAX_INFLIGHT");
	ls->vp_no = sa_trace_next_vp();
	ls->trace = sa_trace_env_on("LAIO_TRACE");
	ls->traced = ls->trace;
	if (ls->trace)
		sa_trace_stdout_lines();
	const char *tf = getenv("LAIO_TRACE_FILE");
	if (tf && *tf)
		laio_timeline_start(ls, tf);
	int d = laio_env_detector();
	if (d > 0 && sa_set_detector(&ls->mb, d) < 0) {
		laio_say_unavailable(d, errno);
		sa_set_detector(&ls->mb, SA_DETECT_AUTO);
		d = LAIO_DETECT_AUTO;
	}
	laio_trace(ls, "thread is now a virtual processor (sa_create)");
	laio_trace_detector(ls, d);
	return ls;
}

struct laio_state *laio_state_get(void)
{
	if (__builtin_expect(self != NULL, 1))
		return self;
	if (inside)
		return NULL; /* a signal handler during set-up or exit: the caller runs synchronously */
	inside = 1;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	pthread_once(&key_once, make_key);
	pthread_mutex_lock(&dead_lock);
	sweep_dead();
	pthread_mutex_unlock(&dead_lock);
	self = state_new();
	if (self)
		pthread_setspecific(exit_key, self);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	inside = 0;
	return self;
}

/* ---- the API ---- */

/* The paper's steps around one call, inside laio_call() and traced_call() (with `inside`
 * set): forget the last background handle, enable upcalls for the current handle, make the
 * call, disable upcalls. Inlined: the path that does not block stays one function. */
static inline __attribute__((always_inline)) long call_with_upcalls(struct laio_state *ls,
		long number, long a0, long a1, long a2, long a3, long a4, long a5)
{
	ls->st.calls++;
	ls->background_handle = NULL;        /* laio_gethandle(): NULL unless this call blocks */
	ls->current_handle->tm.tm_nr = number;
	/* upcalls on (detectors read sa_curthread from other threads: atomic, a plain mov) */
	__atomic_store_n(&ls->mb.sa_curthread, &ls->current_handle->tm, __ATOMIC_RELEASE);
	long r = sa_syscall(number, a0, a1, a2, a3, a4, a5);
	__atomic_store_n(&ls->mb.sa_curthread, NULL, __ATOMIC_RELAXED); /* upcalls off */
	return r;
}

/* laio_syscall7() with the trace on: the call's arguments and, for the timeline, its times.
 * A call that blocks returns here in the flow that goes on, EINPROGRESS; its span is recorded
 * when it completes (laio_completed_append). */
__attribute__((noinline)) static long traced_call(struct laio_state *ls, void **hp, long number,
						  long a0, long a1, long a2, long a3, long a4, long a5)
{
	inside = 1;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	struct laio_handle *h = ls->current_handle;
	const long args[6] = { a0, a1, a2, a3, a4, a5 };
	sa_trace_call_start(&h->tc, number, args, ls->tl != NULL);
	long r = call_with_upcalls(ls, number, a0, a1, a2, a3, a4, a5);
	int e = errno;
	laio_look_sync(ls);
	if (ls->tl && ls->background_handle != h)
		sa_tl_call(ls->tl, &h->tc, ls->vp_no, sa_trace_tid(&ls->mb), 0, r, e);
	if (hp)
		*hp = ls->background_handle;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	inside = 0;
	errno = e;
	return r;
}

/* The thread's first call (set its LAIO state up, then make the call), or a traced call, or a
 * call from a signal handler that interrupted laio_syscall() or laio_poll() of this thread
 * (synchronous, exactly what syscall() returns), or no state could be had (out of memory:
 * synchronous too). */
__attribute__((noinline)) static long first_or_nested(void **hp, long number, long a0, long a1,
						       long a2, long a3, long a4, long a5)
{
	struct laio_state *ls = self;
	if (ls && !inside)
		return traced_call(ls, hp, number, a0, a1, a2, a3, a4, a5);
	if (!ls && !inside && laio_state_get())
		return hp ? laio_syscall_r8(hp, number, a0, a1, a2, a3, a4, a5)
			  : laio_syscall7(number, a0, a1, a2, a3, a4, a5);
	if (hp)
		*hp = NULL;
	return syscall(number, a0, a1, a2, a3, a4, a5);
}

/* Both entries. The handle goes to *hp while `inside` is still set: a signal handler's own
 * laio_syscall() can change background_handle (laio_gethandle()) after this returns, not *hp. */
static inline __attribute__((always_inline)) long laio_call(void **hp, long number, long a0,
							    long a1, long a2, long a3, long a4,
							    long a5)
{
	struct laio_state *ls = self; /* the thread's first call sets it up below */
	/* no state yet, or a signal handler that interrupted this thread inside laio_syscall() or
	   laio_poll(), or tracing: the slow path */
	if (__builtin_expect(!ls || inside || ls->traced, 0))
		return first_or_nested(hp, number, a0, a1, a2, a3, a4, a5);
	inside = 1;
	__atomic_signal_fence(__ATOMIC_SEQ_CST); /* no access to the state moves above */
	long r = call_with_upcalls(ls, number, a0, a1, a2, a3, a4, a5);
	if (hp)
		*hp = ls->background_handle;
	laio_look_sync(ls);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	inside = 0;
	return r;
}

/* laio_syscall() (entry.S) jumps here with its arguments in place. */
long laio_syscall7(long number, long a0, long a1, long a2, long a3, long a4, long a5)
{
	return laio_call(NULL, number, a0, a1, a2, a3, a4, a5);
}

/* laio_syscall_r() (entry.S) jumps here with its arguments in place. */
long laio_syscall_r8(void **hp, long number, long a0, long a1, long a2, long a3, long a4, long a5)
{
	if (!hp)
		return laio_call(NULL, number, a0, a1, a2, a3, a4, a5);
	return laio_call(hp, number, a0, a1, a2, a3, a4, a5);
}

void *laio_gethandle(void)
{
	return self ? self->background_handle : NULL;
}

static int valid_timespec(const struct timespec *ts)
{
	return ts->tv_sec >= 0 && ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000L;
}

/* Move finished calls into the caller's array; true if the caller's array is full or more. */
static int report(struct laio_state *ls, struct laio_completion *c, int n)
{
	int got = 0;
	/* completions that arrived since the last upcall join the completed list as an
	   unblocking upcall would have put them there */
	laio_completed_append(ls, sa_take_completed(&ls->mb), false);
	while (got < n && ls->completed_head) {
		struct laio_handle *h = ls->completed_head;
		ls->completed_head = h->next;
		if (!ls->completed_head)
			ls->completed_tail = NULL;
		c[got].laio_handle = h;
		c[got].laio_return_value = h->tm.tm_retval;
		c[got].laio_errno = h->tm.tm_errno;
		got++;
		ls->st.in_flight--;
		ls->st.completed++;
		if (ls->traced) {
			char nb[24];
			laio_trace(ls, "laio_poll reports h%lu: %s = %ld (errno %d); h%lu is free again",
				   h->tc.hno, sa_trace_call_name(h->tc.nr, nb), h->tm.tm_retval,
				   h->tm.tm_errno, h->tc.hno);
			if (ls->tl)
				sa_tl_done(ls->tl, &h->tc, ls->vp_no, sa_trace_tid(&ls->mb), 0,
					   h->tm.tm_retval, h->tm.tm_errno);
		}
		laio_handle_free(ls, h);
	}
	laio_update_limit(ls);
	if (ls->efd >= 0) {
		uint64_t v;
		if (read(ls->efd, &v, sizeof v) < 0 && errno != EAGAIN)
			abort();
		if (ls->completed_head || sa_has_completed(&ls->mb)) {
			v = 1;
			if (write(ls->efd, &v, sizeof v) < 0)
				abort();
		}
	}
	return got;
}

static int poll_locked(struct laio_state *ls, struct laio_completion completions[],
		       int ncompletions, const struct timespec *timeout);

/* Never returns (the release ends in an upcall): no ThreadSanitizer entry left behind. */
__attribute__((no_sanitize("thread")))
static void release_vp(void *arg)
{
	struct laio_state *ls = arg;
	sa_release(&ls->mb, ls->poll_timeout);
	abort(); /* sa_release() only returns for a bad timespec, checked already */
}

int laio_poll(struct laio_completion completions[], int ncompletions,
	      const struct timespec *timeout)
{
	if (ncompletions < 0 || (ncompletions > 0 && !completions) ||
	    (timeout && !valid_timespec(timeout))) {
		errno = EINVAL;
		return -1;
	}
	if (timeout && timeout->tv_sec > (1L << 30))
		timeout = NULL; /* over 34 years: the deadline would overflow; it means "forever" */
	struct laio_state *ls = laio_state_get();
	if (!ls) {
		errno = ENOMEM;
		return -1;
	}
	if (inside) {
		errno = EDEADLK; /* from a signal handler that interrupted a LAIO call of this thread */
		return -1;
	}
	inside = 1;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	uint64_t t = ls->tl ? sa_trace_now() : 0;
	int got = poll_locked(ls, completions, ncompletions, timeout);
	if (ls->tl) {
		int e = errno;
		struct sa_tl_rec rec = { .kind = SA_TL_POLL, .tid = sa_trace_tid(&ls->mb),
					 .vp = ls->vp_no, .ts = t, .t_end = sa_trace_now(),
					 .count = got > 0 ? (unsigned long)got : 0 };
		sa_tl_add(ls->tl, &rec);
		errno = e;
	}
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	inside = 0;
	return got;
}

static int poll_locked(struct laio_state *ls, struct laio_completion completions[],
		       int ncompletions, const struct timespec *timeout)
{
	int saved_errno = errno;
	uint64_t deadline = 0;
	struct timespec now, left;
	if (timeout) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		deadline = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec +
			   (uint64_t)timeout->tv_sec * 1000000000u + (uint64_t)timeout->tv_nsec;
	}
	for (;;) {
		int got = report(ls, completions, ncompletions);
		if (got > 0 || ncompletions == 0)
			return got;
		if (ls->st.in_flight == 0 && !timeout)
			return 0; /* nothing can ever complete: do not wait forever */
		const struct timespec *t = NULL;
		if (timeout) {
			clock_gettime(CLOCK_MONOTONIC, &now);
			uint64_t n = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
			if (n >= deadline)
				return 0;
			left.tv_sec = (time_t)((deadline - n) / 1000000000u);
			left.tv_nsec = (long)((deadline - n) % 1000000000u);
			t = &left;
		}
		/* the paper: save the context, kse_release(); an upcall comes back here */
		ls->poll_timeout = t;
		ls->poll_timedout = false;
		sa_save_and_run(&ls->poll_ctx, release_vp, ls, ls->upcall_stack + LAIO_UPCALL_STACK);
		errno = saved_errno;
		if (ls->poll_timedout && !ls->completed_head && !sa_has_completed(&ls->mb))
			return 0;
	}
}

int laio_fd(void)
{
	struct laio_state *ls = laio_state_get();
	if (!ls) {
		errno = ENOMEM;
		return -1;
	}
	if (ls->efd < 0) {
		int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (fd < 0)
			return -1;
		ls->efd = fd;
		ls->mb.sa_notify_fd = fd;
		__atomic_fetch_or(&ls->mb.sa_flags, SA_NOTIFY, __ATOMIC_RELEASE);
		if (ls->completed_head || sa_has_completed(&ls->mb)) {
			uint64_t v = 1;
			if (write(fd, &v, sizeof v) < 0)
				return -1;
		}
	}
	return ls->efd;
}

int laio_cancel(void *handle)
{
	struct laio_state *ls = self;
	if (!ls || !handle || !laio_handle_valid(ls, handle)) {
		errno = EINVAL;
		return -1;
	}
	struct laio_handle *h = handle;
	if (h->state != H_BACKGROUND) {
		errno = h->state == H_CURRENT ? EINVAL : ENOENT;
		return -1;
	}
	int before = __atomic_load_n(&h->tm.tm_cstate, __ATOMIC_ACQUIRE);
	if (sa_interrupt(&h->tm) < 0)
		return -1; /* ENOENT: it finished first */
	if (before == SA_CALL_QUEUED || before == SA_CALL_RUNNING)
		ls->st.cancelled++; /* a repeated cancel of the same call is not counted again */
	laio_trace(ls, "laio_cancel: h%lu interrupted", h->tc.hno);
	return 0;
}

int laio_in_flight(const void *handle)
{
	struct laio_state *ls = self;
	if (!ls || !handle || !laio_handle_valid(ls, (void *)handle)) {
		errno = EINVAL;
		return -1;
	}
	int st = ((const struct laio_handle *)handle)->state;
	return st == H_BACKGROUND || st == H_COMPLETED;
}

void laio_stats(struct laio_stats *st)
{
	struct laio_state *ls = self;
	if (!ls) {
		memset(st, 0, sizeof(*st));
		return;
	}
	if (!inside)
		laio_look_sync(ls); /* else a signal handler: what was counted so far */
	*st = ls->st;
	st->max_inflight = (unsigned long)ls->max_inflight;
	st->sync_at_limit = ls->st.sync_inflight + ls->st.sync_no_thread;
	for (int d = 0; d < LAIO_DETECT_COUNT; d++) {
		st->handoffs[d] = __atomic_load_n(&ls->mb.sa_handoffs[d], __ATOMIC_RELAXED);
		st->spurious[d] = __atomic_load_n(&ls->mb.sa_spurious[d], __ATOMIC_RELAXED);
	}
	st->cgroup = sa_cgroup(&ls->mb, &st->cgroup_why);
}

/* Programs built against 0.1 pass a struct laio_stats that ends with spurious[]: they are
 * linked to laio_stats@LAIO_0.1, which fills only that much. */
__attribute__((visibility("default"))) void laio_stats_v01(struct laio_stats *st);
__asm__(".symver laio_stats_v01, laio_stats@LAIO_0.1");
void laio_stats_v01(struct laio_stats *st)
{
	struct laio_stats all;
	laio_stats(&all);
	memcpy(st, &all, offsetof(struct laio_stats, sync_inflight));
}

int laio_init(const struct laio_config *cfg)
{
	struct laio_state *ls = laio_state_get();
	if (!ls) {
		errno = ENOMEM;
		return -1;
	}
	if (!cfg)
		return 0;
	if ((int)cfg->detector < 0 || cfg->detector >= LAIO_DETECT_COUNT || cfg->max_inflight < 0 ||
	    cfg->cgroup < -1 || cfg->cgroup > 1) {
		errno = EINVAL;
		return -1;
	}
	if (ls->st.in_flight > 0) {
		errno = EBUSY;
		return -1;
	}
	const char *why;
	if (!sa_detector_available((int)cfg->detector, &why)) {
		errno = ENOTSUP;
		return -1;
	}
	/* first, so that a timeline that cannot be created leaves everything else as it was */
	if (cfg->trace_file && *cfg->trace_file && laio_timeline_start(ls, cfg->trace_file) < 0)
		return -1;
	/* a zero field keeps what the environment (or the default) chose */
	if (cfg->detector != LAIO_DETECT_AUTO && sa_set_detector(&ls->mb, (int)cfg->detector) < 0)
		return -1;
	if (cfg->cgroup != 0 && sa_set_cgroup(&ls->mb, cfg->cgroup > 0) < 0)
		return -1;
	if (cfg->max_inflight > 0)
		ls->max_inflight = laio_clamp_inflight(cfg->max_inflight, "laio_config.max_inflight");
	if (cfg->trace && !ls->trace) {
		ls->trace = ls->traced = 1;
		sa_trace_stdout_lines();
	}
	if (cfg->detector != LAIO_DETECT_AUTO || cfg->cgroup != 0)
		laio_trace_detector(ls, (int)cfg->detector);
	laio_update_limit(ls);
	return 0;
}

/* Programs built against 0.1 pass a struct laio_config that ends with trace_file: they are
 * linked to laio_init@LAIO_0.1, which reads only that much. */
__attribute__((visibility("default"))) int laio_init_v01(const struct laio_config *cfg);
__asm__(".symver laio_init_v01, laio_init@LAIO_0.1");
int laio_init_v01(const struct laio_config *cfg)
{
	struct laio_config all = { 0 };
	if (cfg)
		memcpy(&all, cfg, offsetof(struct laio_config, cgroup));
	return laio_init(cfg ? &all : NULL);
}

const char *laio_detector_name(long number)
{
	struct laio_state *ls = laio_state_get();
	return ls ? sa_detector_name(&ls->mb, number) : "none";
}
