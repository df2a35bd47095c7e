/*
 * state.c - what a thread's LAIO state is made of besides its calls: its pool of handles, its
 * in-flight limit and the calls that limits made synchronous, its settings from the environment,
 * and its traces.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "laio-internal.h"
#include "../activation/sa-limits.h"

/* One line of the shared format (trace/trace.h): upcall handlers call it too, so no
 * stdio stream is used. */
void laio_trace(struct laio_state *ls, const char *fmt, ...)
{
	if (!ls->trace)
		return;
	va_list ap;
	va_start(ap, fmt);
	sa_trace_vline("laio", ls->vp_no, sa_trace_tid(&ls->mb), fmt, ap);
	va_end(ap);
}

/* The thread's timeline (LAIO_TRACE_FILE or laio_config.trace_file): its record buffer, and
 * the shim's completion times that blocked calls' spans end with. 0, or -1 with errno: the
 * file could not be created (said on stderr). */
int laio_timeline_start(struct laio_state *ls, const char *path)
{
	if (ls->tl)
		return 0; /* a thread keeps its first timeline */
	struct sa_tl_file *f = sa_tl_open(path, "laio");
	if (!f)
		return -1;
	if (!(ls->tl = sa_tl_buf_new(f))) {
		errno = ENOMEM;
		return -1;
	}
	__atomic_fetch_or(&ls->mb.sa_flags, SA_TIMESTAMP, __ATOMIC_RELAXED);
	ls->traced = 1;
	return 0;
}

/* The thread says what drives its VP: the detector configured and what it resolved to. */
void laio_trace_detector(struct laio_state *ls, int configured)
{
	if (ls->trace) {
		char how[1536];
		sa_trace_detector_setup(how, sizeof how, &ls->mb, configured);
		laio_trace(ls, "detector %s", how);
	}
}

/* ---- the pool of free handles ---- */

bool laio_pool_grow(struct laio_state *ls)
{
	struct laio_chunk *c = malloc(sizeof(*c));
	if (!c)
		return false;
	c->next = ls->chunks;
	ls->chunks = c;
	for (int i = 0; i < LAIO_CHUNK; i++) {
		sa_thr_init(&c->h[i].tm);
		laio_handle_free(ls, &c->h[i]);
	}
	return true;
}

/* A handle from the pool. The pool always keeps one in reserve, so that the blocking upcall,
 * which must give the flow a fresh handle, never finds it empty. */
struct laio_handle *laio_handle_alloc(struct laio_state *ls)
{
	struct laio_handle *h = ls->free_head;
	ls->free_head = h->next;
	if (!ls->free_head) {
		ls->free_tail = NULL;
		if (!laio_pool_grow(ls))
			abort(); /* out of memory for a small handle: nothing sane is left to do */
	}
	uint64_t sys = h->tm.tm_sys;
	sa_thr_init(&h->tm);
	h->tm.tm_sys = sys; /* call numbers keep rising: a stale claim never matches */
	h->state = H_CURRENT;
	h->next = NULL;
	return h;
}

/* Back on the tail of the free list (the paper's order: the longest-free is reused first). */
void laio_handle_free(struct laio_state *ls, struct laio_handle *h)
{
	h->state = H_FREE;
	h->next = NULL;
	if (ls->free_tail)
		ls->free_tail->next = h;
	else
		ls->free_head = h;
	ls->free_tail = h;
}

bool laio_handle_valid(struct laio_state *ls, void *p)
{
	for (struct laio_chunk *c = ls->chunks; c; c = c->next) {
		char *lo = (char *)c->h, *hi = (char *)(c->h + LAIO_CHUNK);
		if ((char *)p >= lo && (char *)p < hi)
			return ((char *)p - lo) % sizeof(struct laio_handle) == 0;
	}
	return false;
}

void laio_update_limit(struct laio_state *ls)
{
	/* claimers and completers read sa_flags from other threads: atomic read-modify-writes
	   (never on the fast path: only after an upcall or a poll) */
	if (ls->st.in_flight >= (unsigned long)ls->max_inflight) {
		unsigned old = __atomic_fetch_or(&ls->mb.sa_flags, SA_NOUPCALL, __ATOMIC_RELAXED);
		if (!(old & SA_NOUPCALL)) {
			/* before any call can hang on it: said once per process, traced each time */
			sa_limit_notice(SA_LIMIT_INFLIGHT, ls->st.in_flight);
			laio_trace(ls, "%lu calls in flight, the limit: calls that block run "
				   "synchronously now", ls->st.in_flight);
		}
	} else {
		__atomic_fetch_and(&ls->mb.sa_flags, ~SA_NOUPCALL, __ATOMIC_RELAXED);
	}
}

/* The limit in effect: no more calls in flight than the process may have kernel threads (each
 * holds one). `what` names the setting for the message when a setting is clamped. */
int laio_clamp_inflight(long v, const char *what)
{
	const char *which;
	unsigned long room = sa_thread_room(&which);
	if ((unsigned long)v <= room)
		return (int)v;
	if (what)
		fprintf(stderr, "laio: %s=%ld is more calls in flight than this process may have "
			"kernel threads (%s %lu); using %lu\n", what, v, which, room, room);
	return (int)room;
}

/* The calls that blocked and ran synchronously since the last look (the shim counts them in
 * sa_nsync), by the limit that made them: the thread's own (SA_NOUPCALL, which only this thread
 * sets) or no kernel thread to be had. Exact here: the flow runs only once its call is over. */
__attribute__((noinline)) void laio_count_sync(struct laio_state *ls, unsigned long now)
{
	long n = (long)(now - ls->nsync_seen);
	if (n < 0)
		return; /* a detector's count that a claim took back, not added yet (claim.c) */
	ls->nsync_seen = now;
	if (__atomic_load_n(&ls->mb.sa_flags, __ATOMIC_RELAXED) & SA_NOUPCALL) {
		ls->st.sync_inflight += (unsigned long)n;
		laio_trace(ls, "the call ran synchronously: %lu calls in flight, the limit",
			   ls->st.in_flight);
	} else {
		ls->st.sync_no_thread += (unsigned long)n;
		laio_trace(ls, "the call ran synchronously: no kernel thread could be had for it");
	}
}

/* ---- settings from the environment ---- */

/* A numeric environment setting: the whole value a decimal integer in [lo, hi]; anything else
 * is reported on stderr and the default is used. */
long laio_env_long(const char *name, long lo, long hi, long dflt)
{
	const char *e = getenv(name);
	if (!e || !*e)
		return dflt;
	char *end;
	int saved = errno;
	errno = 0;
	long v = strtol(e, &end, 10);
	bool bad = errno || end == e || *end || v < lo || v > hi;
	errno = saved;
	if (bad) {
		fprintf(stderr, "laio: %s=%s is not a number from %ld to %ld; using %ld\n", name, e, lo,
			hi, dflt);
		return dflt;
	}
	return v;
}

int laio_env_detector(void)
{
	const char *e = getenv("LAIO_DETECTOR");
	if (!e || !*e)
		return LAIO_DETECT_AUTO;
	for (int i = 0; i < LAIO_DETECT_COUNT; i++)
		if (strcmp(e, sa_trace_detector_name(i)) == 0)
			return i;
	fprintf(stderr, "laio: LAIO_DETECTOR=%s is not one of auto, idle, upcall, probe, watchdog, "
		"eager; using auto\n", e);
	return LAIO_DETECT_AUTO;
}

/* Why LAIO_DETECTOR's detector cannot work: the shim's reason, and for upcall the setting that
 * decides it, so that the user sees what to change. */
void laio_say_unavailable(int d, int err)
{
	const char *why = "";
	char paranoid[80] = "";
	if (sa_detector_available(d, &why) || !*why)
		why = strerror(err);
	FILE *f = d == LAIO_DETECT_UPCALL ? fopen("/proc/sys/kernel/perf_event_paranoid", "re") : NULL;
	long level;
	if (f && fscanf(f, "%ld", &level) == 1)
		snprintf(paranoid, sizeof paranoid, "; kernel.perf_event_paranoid is %ld here, "
			 "euid %ld", level, (long)geteuid());
	if (f)
		fclose(f);
	fprintf(stderr, "laio: LAIO_DETECTOR=%s cannot work here: %s%s; using auto\n",
		sa_trace_detector_name(d), why, paranoid);
}
