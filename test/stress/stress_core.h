/*
 * stress_core.h - the LAIO stress: many laio_syscall() calls from several threads, a random mix
 * of calls that block and calls that do not, with laio_cancel() mixed in; every completion is
 * accounted for exactly once and every byte written is read.
 *
 * Included by test/stress/stress.c (the long run, `make stress`) and by
 * test/test_stress_small.c (a short run per detector inside `make test`). Everything here is
 * static; it needs laio.h and nothing else of the project.
 *
 * Per worker thread (one LAIO thread each):
 *   - four source channels, two pipes and two socketpairs, kept almost empty by the worker's
 *     feeder thread: reads of them block often and complete when the feeder writes;
 *   - a "full" pipe: the worker writes n bytes (plain write) before it reads n through LAIO,
 *     so those reads never block;
 *   - a sink pipe the worker writes to through LAIO, drained by the feeder (writes block when
 *     the feeder falls behind);
 *   - short nanosleeps (10-200 us) and getpid();
 *   - laio_cancel() of a random call in flight (after 3 calls in 64): its completion must be
 *     EINTR or ECANCELED, or its real result if it finished first; a call that was not
 *     cancelled must never report EINTR or ECANCELED.
 * The handles in flight are kept in a set (at most STRESS_CAP): a completion for a handle not in
 * it (unknown, or reported twice) is an error, and so is a handle still in it at the end. Bytes balance per
 * channel: fed = read + left over at the end.
 */
#ifndef STRESS_CORE_H
#define STRESS_CORE_H

#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "laio.h"

#define STRESS_MAX_THREADS 64
#define STRESS_NSRC 4                 /* source channels per worker: 2 pipes, 2 socketpairs */
#define STRESS_CAP 64                 /* background calls in flight per worker, at most */
#define STRESS_SLOTS (STRESS_CAP + 1) /* buffers: one per call in flight, one for the next */

static const char *const stress_det_names[] = { "auto", "upcall", "probe", "watchdog", "eager", "idle" };

struct stress_opts {
	long calls;      /* laio_syscall() calls per detector, all threads together */
	int threads;     /* worker threads (LAIO threads), each with a feeder thread */
	double seconds;  /* per detector: stop issuing calls after this long (0: no limit) */
	unsigned seed;
	int max_errors_shown;
	int no_cancel;   /* no laio_cancel() (to tell a cancel problem from others) */
	int cancel_rate; /* laio_cancel() after this many calls in 64 (0: the default, 3) */
};

struct stress_totals {
	int detector;
	int skipped;              /* the detector cannot work here */
	long calls;               /* laio_syscall() calls */
	long blocked;             /* returned EINPROGRESS */
	long completions;         /* completions reported by laio_poll() */
	long cancels;             /* laio_cancel() calls made */
	long cancel_ok;           /* ... that returned 0 (the first for their call) */
	long cancel_again;        /* ... that returned 0 for a call already cancelled */
	long cancel_done;         /* ... that returned ENOENT (finished first) */
	long cancelled_results;   /* completions that reported EINTR or ECANCELED */
	long polls;               /* laio_poll() calls */
	long bytes;               /* bytes moved through the channels (read side) */
	unsigned long sync_at_limit;
	unsigned long peak_in_flight;
	long errors;
	double wall;
};

/* ---- small helpers ---- */

static inline double stress_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline uint64_t stress_rand(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static inline int stress_avail(int fd)
{
	int n = 0;
	if (ioctl(fd, FIONREAD, &n) < 0)
		return 0;
	return n;
}

/* ---- one worker ---- */

enum stress_op { OP_GETPID, OP_READ_FULL, OP_READ_SRC, OP_RECV_SRC, OP_SLEEP, OP_WRITE_SINK };

struct stress_call {           /* a call in flight */
	void *h;
	int op;
	int chan;               /* source channel, for reads */
	long count;             /* bytes asked for */
	int slot;               /* its buffer, owned by the call until it is reported */
	bool cancelled;         /* laio_cancel() returned 0 for it */
};

struct stress_worker {
	const struct stress_opts *o;
	int detector;
	int index;
	double deadline;          /* set when the worker starts calling */
	long quota;
	uint64_t rng;             /* the worker's */
	uint64_t feeder_seed;     /* the feeder's (it never reads the worker's) */
	/* descriptors */
	int src[STRESS_NSRC][2];  /* [0] the worker reads (blocking), [1] the feeder writes */
	int full[2];
	int sink[2];              /* [1] the worker writes through LAIO, [0] the feeder drains */
	/* accounting, worker side */
	long src_read[STRESS_NSRC];
	long full_written, full_read;
	long sink_written;
	struct stress_call set[STRESS_CAP]; /* the set of handles in flight (dense) */
	int in_flight;
	/* accounting, feeder side (read by the worker once the feeder is joined) */
	long src_fed[STRESS_NSRC];
	long sink_drained;
	int stop_feeder;
	/* buffers of calls: a call owns its slot until it is reported */
	char bufs[STRESS_SLOTS][64];
	struct timespec sleeps[STRESS_SLOTS];
	int free_slots[STRESS_SLOTS];
	int nfree;
	struct stress_totals t;
	int skipped;
};

static void stress_error(struct stress_worker *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void stress_error(struct stress_worker *w, const char *fmt, ...)
{
	w->t.errors++;
	if (w->t.errors > w->o->max_errors_shown)
		return;
	va_list ap;
	va_start(ap, fmt);
	flockfile(stderr);
	fprintf(stderr, "stress[%s/%d]: ", stress_det_names[w->detector], w->index);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	funlockfile(stderr);
	va_end(ap);
}

static struct stress_call *stress_find(struct stress_worker *w, void *h)
{
	for (int i = 0; i < w->in_flight; i++)
		if (w->set[i].h == h)
			return &w->set[i];
	return NULL;
}

static void stress_remove(struct stress_worker *w, struct stress_call *c)
{
	w->free_slots[w->nfree++] = c->slot;
	*c = w->set[--w->in_flight];
}

/* Check one result (of a synchronous call, or of a completion) and account its bytes. */
static void stress_result(struct stress_worker *w, int op, int chan, long count, bool cancelled,
			  long r, int e, bool background)
{
	bool cancel_result = r == -1 && (e == EINTR || e == ECANCELED);
	const char *how = background ? cancelled ? " (background, cancelled)" : " (background)"
				      : " (synchronous)";
	if (cancel_result) {
		if (!cancelled)
			stress_error(w, "op %d reported %s without a cancel%s", op, strerror(e), how);
		w->t.cancelled_results++;
		return;
	}
	switch (op) {
	case OP_GETPID:
		if (r != getpid())
			stress_error(w, "getpid: %ld (errno %d)%s", r, e, how);
		break;
	case OP_SLEEP:
		if (r != 0)
			stress_error(w, "nanosleep: %ld (errno %d)%s", r, e, how);
		break;
	case OP_READ_FULL:
		if (r < 1 || r > count)
			stress_error(w, "read of the full pipe: %ld (errno %d), asked %ld%s", r, e, count,
				     how);
		else
			w->full_read += r;
		break;
	case OP_READ_SRC:
	case OP_RECV_SRC:
		if (r < 1 || r > count)
			stress_error(w, "%s of source %d: %ld (errno %d), asked %ld%s",
				     op == OP_READ_SRC ? "read" : "recv", chan, r, e, count, how);
		else
			w->src_read[chan] += r;
		break;
	case OP_WRITE_SINK:
		if (r < 1 || r > count)
			stress_error(w, "write to the sink: %ld (errno %d), asked %ld%s", r, e, count,
				     how);
		else
			w->sink_written += r;
		break;
	}
}

static void stress_take(struct stress_worker *w, struct laio_completion *c, int n)
{
	for (int i = 0; i < n; i++) {
		struct stress_call *k = stress_find(w, c[i].laio_handle);
		w->t.completions++;
		if (!k) {
			stress_error(w, "completion for handle %p, which is not in flight (unknown or "
				     "reported twice)", c[i].laio_handle);
			continue;
		}
		stress_result(w, k->op, k->chan, k->count, k->cancelled, c[i].laio_return_value,
			      c[i].laio_errno, true);
		stress_remove(w, k);
	}
}

static void stress_poll(struct stress_worker *w, const struct timespec *ts)
{
	struct laio_completion c[32];
	int n = laio_poll(c, 32, ts);
	w->t.polls++;
	if (n < 0) {
		stress_error(w, "laio_poll: %s", strerror(errno));
		return;
	}
	stress_take(w, c, n);
}

static void stress_cancel_one(struct stress_worker *w)
{
	if (w->in_flight == 0)
		return;
	struct stress_call *k = &w->set[stress_rand(&w->rng) % (uint64_t)w->in_flight];
	w->t.cancels++;
	errno = 0;
	int r = laio_cancel(k->h);
	if (r == 0) {
		if (k->cancelled)
			w->t.cancel_again++;
		else
			w->t.cancel_ok++;
		k->cancelled = true;
	} else if (errno == ENOENT) {
		w->t.cancel_done++;
	} else {
		stress_error(w, "laio_cancel of a call in flight: %s", strerror(errno));
	}
}

static void *stress_feeder(void *arg)
{
	struct stress_worker *w = arg;
	uint64_t rng = w->feeder_seed;
	char buf[4096];
	memset(buf, 'f', sizeof buf);
	while (!__atomic_load_n(&w->stop_feeder, __ATOMIC_ACQUIRE)) {
		int i = (int)(stress_rand(&rng) % STRESS_NSRC);
		/* keep the sources nearly empty, so that reads block often */
		if (stress_avail(w->src[i][0]) < 8) {
			size_t n = 1 + stress_rand(&rng) % 8;
			ssize_t k = write(w->src[i][1], buf, n);
			if (k > 0)
				w->src_fed[i] += k;
		}
		ssize_t d = read(w->sink[0], buf, sizeof buf);
		if (d > 0)
			w->sink_drained += d;
		uint64_t pause = stress_rand(&rng) % 4;
		if (pause == 0) {
			struct timespec ts = { 0, (long)(stress_rand(&rng) % 50) * 1000 };
			nanosleep(&ts, NULL);
		} else {
			for (volatile int spin = (int)(stress_rand(&rng) % 2000); spin > 0; spin--)
				;
		}
	}
	return NULL;
}

/* One laio_syscall() of a random kind. */
static void stress_one(struct stress_worker *w)
{
	uint64_t x = stress_rand(&w->rng);
	int pick = (int)(x % 100);
	int op = pick < 20 ? OP_GETPID : pick < 35 ? OP_READ_FULL : pick < 55 ? OP_READ_SRC
	       : pick < 70 ? OP_RECV_SRC : pick < 85 ? OP_SLEEP : OP_WRITE_SINK;
	int chan = (int)((x >> 8) % STRESS_NSRC);
	long count = 1 + (long)((x >> 16) % 16);
	/* a buffer that no call in flight owns (in_flight < CAP: one is free) */
	if (w->nfree == 0) {
		stress_error(w, "no free buffer: the accounting of calls in flight is wrong");
		return;
	}
	int slot = w->free_slots[--w->nfree];
	char *buf = w->bufs[slot];
	long r;
	switch (op) {
	case OP_GETPID:
		r = laio_syscall(SYS_getpid);
		break;
	case OP_READ_FULL:
		if (write(w->full[1], "0123456789abcdef", (size_t)count) != count) {
			stress_error(w, "write to the full pipe: %s", strerror(errno));
			return;
		}
		w->full_written += count;
		r = laio_syscall(SYS_read, w->full[0], buf, count);
		break;
	case OP_READ_SRC:
		r = laio_syscall(SYS_read, w->src[chan][0], buf, count);
		break;
	case OP_RECV_SRC:
		chan = 2 + chan % 2; /* the socketpairs */
		r = laio_syscall(SYS_recvfrom, w->src[chan][0], buf, count, 0, NULL, NULL);
		break;
	case OP_SLEEP:
		w->sleeps[slot] = (struct timespec){ 0, (long)(10 + (x >> 24) % 190) * 1000 };
		r = laio_syscall(SYS_nanosleep, &w->sleeps[slot], NULL);
		break;
	default:
		r = laio_syscall(SYS_write, w->sink[1], "0123456789abcdef", count);
		break;
	}
	int e = errno;
	w->t.calls++;
	void *h = laio_gethandle();
	if (r == -1 && e == EINPROGRESS) {
		w->t.blocked++;
		if (!h) {
			stress_error(w, "EINPROGRESS without a handle");
			return;
		}
		if (stress_find(w, h)) {
			stress_error(w, "handle %p is already in flight", h);
			w->free_slots[w->nfree++] = slot;
			return;
		}
		w->set[w->in_flight++] = (struct stress_call){ h, op, chan, count, slot, false };
		return;
	}
	w->free_slots[w->nfree++] = slot;
	if (h)
		stress_error(w, "a call that did not go to the background has handle %p", h);
	stress_result(w, op, chan, count, false, r, r == -1 ? e : 0, false);
}

static void *stress_worker_main(void *arg)
{
	struct stress_worker *w = arg;
	struct laio_config cfg = { .detector = (enum laio_detector)w->detector };
	for (int i = 0; i < STRESS_SLOTS; i++)
		w->free_slots[w->nfree++] = i;
	if (laio_init(&cfg) < 0) {
		w->skipped = 1;
		return NULL;
	}
	pthread_t feeder;
	if (pthread_create(&feeder, NULL, stress_feeder, w) != 0) {
		stress_error(w, "cannot start the feeder");
		return NULL;
	}
	struct timespec zero = { 0, 0 }, tenth = { 0, 100 * 1000 * 1000 };
	w->deadline = stress_now() + w->o->seconds; /* from here: a slow start costs no calls */
	for (long i = 0; i < w->quota; i++) {
		if ((i & 255) == 255 && w->o->seconds > 0 && stress_now() > w->deadline)
			break;
		while (w->in_flight >= STRESS_CAP)
			stress_poll(w, &tenth);
		stress_one(w);
		uint64_t x = stress_rand(&w->rng) % 64;
		uint64_t rate = w->o->no_cancel ? 0 : w->o->cancel_rate ? (uint64_t)w->o->cancel_rate : 3;
		if (x < rate)
			stress_cancel_one(w);
		else if (x < rate + 8 && w->in_flight > 0)
			stress_poll(w, &zero);
	}
	/* drain: everything in flight completes (the feeder keeps feeding) */
	double until = stress_now() + 60;
	while (w->in_flight > 0 && stress_now() < until)
		stress_poll(w, &tenth);
	if (w->in_flight > 0)
		stress_error(w, "%d call(s) never completed", w->in_flight);
	__atomic_store_n(&w->stop_feeder, 1, __ATOMIC_RELEASE);
	pthread_join(feeder, NULL);
	/* nothing more may come */
	struct laio_completion extra[8];
	int n = laio_poll(extra, 8, &zero);
	if (n != 0)
		stress_error(w, "%d completion(s) after the last call was reported", n);
	struct laio_stats st;
	laio_stats(&st);
	if (st.in_flight != 0)
		stress_error(w, "laio_stats: %lu in flight at the end", st.in_flight);
	if ((long)st.calls != w->t.calls || (long)st.blocked != w->t.blocked ||
	    (long)st.completed != w->t.completions || (long)st.cancelled != w->t.cancel_ok)
		stress_error(w, "laio_stats disagrees: calls %lu/%ld blocked %lu/%ld completed "
			     "%lu/%ld cancelled %lu/%ld", st.calls, w->t.calls, st.blocked,
			     w->t.blocked, st.completed, w->t.completions, st.cancelled,
			     w->t.cancel_ok);
	w->t.sync_at_limit = st.sync_at_limit;
	w->t.peak_in_flight = st.peak_in_flight;
	/* bytes balance: what was fed is what was read plus what is left */
	char buf[4096];
	for (int i = 0; i < STRESS_NSRC; i++) {
		long left = 0;
		ssize_t k;
		while (stress_avail(w->src[i][0]) > 0 &&
		       (k = read(w->src[i][0], buf, sizeof buf)) > 0)
			left += k;
		if (w->src_fed[i] != w->src_read[i] + left)
			stress_error(w, "source %d: fed %ld bytes, read %ld + %ld left", i,
				     w->src_fed[i], w->src_read[i], left);
		w->t.bytes += w->src_read[i];
	}
	long left = 0;
	ssize_t k;
	while (stress_avail(w->full[0]) > 0 && (k = read(w->full[0], buf, sizeof buf)) > 0)
		left += k;
	if (w->full_written != w->full_read + left)
		stress_error(w, "full pipe: wrote %ld bytes, read %ld + %ld left", w->full_written,
			     w->full_read, left);
	left = 0;
	while (stress_avail(w->sink[0]) > 0 && (k = read(w->sink[0], buf, sizeof buf)) > 0)
		left += k;
	if (w->sink_written != w->sink_drained + left)
		stress_error(w, "sink: wrote %ld bytes, drained %ld + %ld left", w->sink_written,
			     w->sink_drained, left);
	w->t.bytes += w->full_read + w->sink_written;
	return NULL;
}

static int stress_open(struct stress_worker *w)
{
	for (int i = 0; i < STRESS_NSRC; i++) {
		int rc = i < 2 ? pipe2(w->src[i], O_CLOEXEC)
			       : socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, w->src[i]);
		if (rc != 0)
			return -1;
		fcntl(w->src[i][1], F_SETFL, O_NONBLOCK); /* the feeder never blocks */
	}
	if (pipe2(w->full, O_CLOEXEC) != 0 || pipe2(w->sink, O_CLOEXEC) != 0)
		return -1;
	fcntl(w->sink[0], F_SETFL, O_NONBLOCK);
	return 0;
}

static void stress_close(struct stress_worker *w)
{
	for (int i = 0; i < STRESS_NSRC; i++) {
		close(w->src[i][0]);
		close(w->src[i][1]);
	}
	close(w->full[0]);
	close(w->full[1]);
	close(w->sink[0]);
	close(w->sink[1]);
}

/* Run the stress under one detector; fills *t. Returns the number of errors. */
static long stress_run(int detector, const struct stress_opts *o, struct stress_totals *t)
{
	int nt = o->threads < 1 ? 1 : o->threads > STRESS_MAX_THREADS ? STRESS_MAX_THREADS
								      : o->threads;
	struct stress_worker *w = calloc((size_t)nt, sizeof(*w));
	pthread_t tid[STRESS_MAX_THREADS];
	memset(t, 0, sizeof(*t));
	t->detector = detector;
	if (!w) {
		t->errors = 1;
		return 1;
	}
	double t0 = stress_now();
	int started = 0;
	for (int i = 0; i < nt; i++) {
		w[i].o = o;
		w[i].detector = detector;
		w[i].index = i;
		w[i].quota = o->calls / nt + (i < o->calls % nt);
		w[i].rng = 0x853c49e6748fea9bull ^ ((uint64_t)o->seed << 16) ^ (uint64_t)(i + 1) *
			   0x2545f4914f6cdd1dull ^ (uint64_t)detector;
		w[i].feeder_seed = w[i].rng ^ 0x9e3779b97f4a7c15ull;
		if (stress_open(&w[i]) != 0) {
			fprintf(stderr, "stress: cannot open descriptors: %s\n", strerror(errno));
			t->errors++;
			break;
		}
		if (pthread_create(&tid[i], NULL, stress_worker_main, &w[i]) != 0) {
			t->errors++;
			stress_close(&w[i]);
			break;
		}
		started++;
	}
	for (int i = 0; i < started; i++) {
		pthread_join(tid[i], NULL);
		stress_close(&w[i]);
		if (w[i].skipped) {
			t->skipped = 1;
			continue;
		}
		t->calls += w[i].t.calls;
		t->blocked += w[i].t.blocked;
		t->completions += w[i].t.completions;
		t->cancels += w[i].t.cancels;
		t->cancel_ok += w[i].t.cancel_ok;
		t->cancel_done += w[i].t.cancel_done;
		t->cancel_again += w[i].t.cancel_again;
		t->cancelled_results += w[i].t.cancelled_results;
		t->polls += w[i].t.polls;
		t->bytes += w[i].t.bytes;
		t->sync_at_limit += w[i].t.sync_at_limit;
		if (w[i].t.peak_in_flight > t->peak_in_flight)
			t->peak_in_flight = w[i].t.peak_in_flight;
		t->errors += w[i].t.errors;
	}
	t->wall = stress_now() - t0;
	/* every background call completed exactly once */
	if (!t->skipped && t->completions != t->blocked) {
		fprintf(stderr, "stress[%s]: %ld calls went to the background, %ld completions\n",
			stress_det_names[detector], t->blocked, t->completions);
		t->errors++;
	}
	free(w);
	return t->errors;
}

static void stress_print(FILE *f, const struct stress_totals *t)
{
	if (t->skipped) {
		fprintf(f, "%-8s  skipped: the detector cannot work here\n",
			stress_det_names[t->detector]);
		return;
	}
	fprintf(f, "%-8s  calls %9ld  blocked %9ld (%4.1f%%)  cancels %7ld (took effect %ld, "
		"again %ld, already done %ld)  completions %9ld (%ld cancelled)  sync_at_limit %lu  "
		"bytes %ld  wall %.2f s (%.0f calls/s)  errors %ld\n",
		stress_det_names[t->detector], t->calls, t->blocked,
		t->calls ? 100.0 * (double)t->blocked / (double)t->calls : 0.0, t->cancels,
		t->cancel_ok, t->cancel_again, t->cancel_done, t->completions, t->cancelled_results,
		t->sync_at_limit, t->bytes, t->wall, t->wall > 0 ? (double)t->calls / t->wall : 0.0,
		t->errors);
}

#endif
