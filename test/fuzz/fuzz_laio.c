/*
 * fuzz_laio.c - a libFuzzer target that drives the public LAIO API (laio.h) with call sequences
 * decoded from the input, and checks its invariants after every step.
 *
 * Built and run by test/fuzz/run.sh (clang -fsanitize=fuzzer,address, the library's sources
 * compiled with it). The calls run on one LAIO thread that lives across inputs; each input
 * starts with nothing in flight, picks a detector, and ends by completing and reporting every
 * call it started.
 *
 * The input is a sequence of operations (one byte: the operation, then its arguments):
 *   laio_syscall of a whitelist of harmless calls with random arguments: read, write, recvfrom
 *   and close on the input's own pipes, socketpair and memfd (or a descriptor that is certainly
 *   not open), nanosleep with random (also invalid) timespecs up to 2 ms, getpid, lseek;
 *   laio_poll with random counts (also negative, a NULL array) and timeouts (also invalid);
 *   laio_cancel of a handle in flight, a reported handle, or garbage; laio_gethandle, laio_fd,
 *   laio_stats, laio_init; and plain writes and reads that feed and drain the pipes.
 * Every laio_syscall() here passes all six arguments: laio_syscall() reads six whatever the
 * caller passed (see varargs_repro.c: AddressSanitizer reports it otherwise).
 * Buffers are the harness's own and never smaller than the count passed, or NULL / (void *)1
 * (the kernel says EFAULT): a call can never write outside memory it was given.
 *
 * Invariants (a violation aborts, and libFuzzer keeps the input):
 *   - a call that returns EINPROGRESS has a handle that is not already in flight; any other
 *     call has none (laio_gethandle() == NULL);
 *   - every completion is for a handle in flight, and is reported once;
 *   - laio_stats().in_flight equals the number of handles in flight;
 *   - results make sense for the call (a read returns at most its count, getpid the pid, ...);
 *     EINTR/ECANCELED only for a call that was cancelled;
 *   - laio_cancel: 0 or ENOENT for a handle in flight, ENOENT or EINVAL for a reported one,
 *     EINVAL for anything else; laio_poll and laio_init: EINVAL/EBUSY exactly when due;
 *   - at the end of the input every call completes (within 10 s) and nothing more is reported.
 */
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "laio.h"

#define MAX_OPS 96
#define MAX_FLIGHT 48
#define NFD 7           /* pipe A (r, w), pipe B (r, w), socketpair (0, 1), memfd */
#define BADFD 1000000   /* above any RLIMIT_NOFILE here: never open */

static const char *const dnames[] = { "auto", "upcall", "probe", "watchdog", "eager", "idle" };

/* The thread's in-flight limit: it persists across inputs (laio_init with max_inflight 0
 * leaves it as it is). At the limit a call that blocks runs synchronously, and a read of an
 * empty pipe would then wait forever for data only this thread can write: such calls are not
 * made at the limit. */
static __thread int inflight_limit = 4096;

/* What laio_gethandle() must say: the handle of the thread's most recent laio_syscall() if it
 * went to the background (also one of an earlier input), else NULL. */
static __thread void *last_handle;

/* The detector of the LAIO thread running the input. laio_init() with LAIO_DETECT_AUTO keeps
 * the detector a thread has (laio_init(3)): a thread never goes back to auto. So there is one
 * LAIO thread per detector; an input may switch its thread to another detector, and the thread
 * gets its own back (with the default limit) when the input ends. The auto thread is never
 * switched away. */
static __thread int own_detector;

enum kind { K_READ, K_WRITE, K_RECV, K_CLOSE, K_SLEEP, K_GETPID, K_LSEEK };

struct call {
	void *h;
	int kind;
	int fd;
	long count;
	int slot;
	bool cancelled;
};

struct fuzz {
	const uint8_t *p, *end;
	int detector;
	int fd[NFD];
	bool open[NFD];
	struct call flight[MAX_FLIGHT];
	int nflight;
	void *seen[256];      /* handles reported during this input */
	int nseen;
	char bufs[MAX_FLIGHT + 1][128];
	struct timespec ts[MAX_FLIGHT + 1];
	int free_slots[MAX_FLIGHT + 1];
	int nfree;
	int efd;
	pid_t pid;
};

#define CHECK(cond, ...)                                                                       \
	do {                                                                                   \
		if (!(cond)) {                                                                 \
			fprintf(stderr, "fuzz_laio [%s]: invariant violated: ",                 \
				dnames[f->detector]);                                          \
			fprintf(stderr, __VA_ARGS__);                                          \
			fprintf(stderr, " (%s:%d)\n", __FILE__, __LINE__);                     \
			abort();                                                               \
		}                                                                              \
	} while (0)

static uint8_t take(struct fuzz *f)
{
	return f->p < f->end ? *f->p++ : 0;
}

static uint32_t take32(struct fuzz *f)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v = v << 8 | take(f);
	return v;
}

static struct call *find(struct fuzz *f, void *h)
{
	for (int i = 0; i < f->nflight; i++)
		if (f->flight[i].h == h)
			return &f->flight[i];
	return NULL;
}

static bool was_seen(struct fuzz *f, void *h)
{
	for (int i = 0; i < f->nseen; i++)
		if (f->seen[i] == h)
			return true;
	return false;
}

static bool fd_busy(struct fuzz *f, int fd)
{
	for (int i = 0; i < f->nflight; i++)
		if (f->flight[i].fd == fd)
			return true;
	return false;
}

static void check_stats(struct fuzz *f)
{
	struct laio_stats st;
	laio_stats(&st);
	CHECK(st.in_flight == (unsigned long)f->nflight, "laio_stats in_flight %lu, tracked %d",
	      st.in_flight, f->nflight);
}

/* The result of a call of `kind` (synchronous, or from its completion). */
static void check_result(struct fuzz *f, const struct call *c, long r, int e)
{
	if (r == -1 && (e == EINTR || e == ECANCELED)) {
		CHECK(c->cancelled, "kind %d reported %s without a cancel", c->kind, strerror(e));
		return;
	}
	switch (c->kind) {
	case K_READ:
	case K_RECV:
	case K_WRITE:
		CHECK(r >= -1 && r <= c->count, "kind %d on fd %d: %ld (count %ld, errno %d)",
		      c->kind, c->fd, r, c->count, e);
		break;
	case K_GETPID:
		CHECK(r == f->pid, "getpid: %ld", r);
		break;
	case K_SLEEP:
		CHECK(r == 0 || (r == -1 && (e == EINVAL || e == EFAULT)), "nanosleep: %ld errno %d",
		      r, e);
		break;
	case K_CLOSE:
		CHECK(r == 0 || (r == -1 && e == EBADF), "close(%d): %ld errno %d", c->fd, r, e);
		break;
	case K_LSEEK:
		CHECK(r >= -1, "lseek: %ld", r);
		break;
	}
	if (r == -1)
		CHECK(e > 0 && e < 4096, "kind %d: -1 with errno %d", c->kind, e);
}

static void take_completions(struct fuzz *f, struct laio_completion *c, int n)
{
	for (int i = 0; i < n; i++) {
		struct call *k = find(f, c[i].laio_handle);
		CHECK(k != NULL, "completion for %p, which is not in flight (%s)", c[i].laio_handle,
		      was_seen(f, c[i].laio_handle) ? "reported before" : "unknown");
		check_result(f, k, c[i].laio_return_value, c[i].laio_errno);
		if (k->kind == K_CLOSE && c[i].laio_return_value == -1 &&
		    c[i].laio_errno == ECANCELED) {
			/* cancelled before it ran: the descriptor is still open (the harness must
			   still feed it or close it, or a read of its peer waits for ever) */
			for (int j = 0; j < NFD; j++)
				if (f->fd[j] == k->fd)
					f->open[j] = true;
		}
		if (f->nseen < 256)
			f->seen[f->nseen++] = k->h;
		f->free_slots[f->nfree++] = k->slot;
		*k = f->flight[--f->nflight];
	}
}

static int pick_fd(struct fuzz *f, uint8_t b)
{
	int i = b % (NFD + 1);
	if (i == NFD || !f->open[i])
		return BADFD;
	return f->fd[i];
}

static void *pick_buf(struct fuzz *f, uint8_t b, int slot)
{
	switch (b % 8) {
	case 0:
		return NULL;
	case 1:
		return (void *)1;
	default:
		return f->bufs[slot];
	}
}

/* One laio_syscall. */
static void op_call(struct fuzz *f, int kind)
{
	if (f->nflight >= MAX_FLIGHT || f->nfree == 0)
		return;
	if (f->nflight >= inflight_limit &&
	    (kind == K_READ || kind == K_RECV || kind == K_WRITE))
		return;
	int slot = f->free_slots[f->nfree - 1];
	struct call c = { .kind = kind, .fd = -1, .slot = slot };
	uint8_t a = take(f), b = take(f);
	long count = take(f) % 129; /* never more than the buffer */
	void *buf = pick_buf(f, b, slot);
	if (!buf || buf == (void *)1)
		count = (long)take32(f); /* any count: the kernel faults once it copies */
	long r;
	errno = 0;
	switch (kind) {
	case K_READ:
		c.fd = pick_fd(f, a);
		c.count = count;
		r = laio_syscall(SYS_read, (long)c.fd, buf, count, 0L, 0L, 0L);
		break;
	case K_RECV:
		c.fd = pick_fd(f, a);
		c.count = count;
		r = laio_syscall(SYS_recvfrom, (long)c.fd, buf, count,
				 (long)(b & 0x40 ? MSG_PEEK : 0), 0L, 0L);
		break;
	case K_WRITE:
		c.fd = pick_fd(f, a);
		c.count = count;
		r = laio_syscall(SYS_write, (long)c.fd, buf, count, 0L, 0L, 0L);
		break;
	case K_CLOSE: {
		int i = a % NFD;
		if (!f->open[i] || fd_busy(f, f->fd[i]))
			return; /* never a descriptor a call in flight uses: its number could be reused */
		c.fd = f->fd[i];
		f->open[i] = false;
		r = laio_syscall(SYS_close, (long)c.fd, 0L, 0L, 0L, 0L, 0L);
		break;
	}
	case K_SLEEP: {
		struct timespec *ts = &f->ts[slot];
		ts->tv_sec = 0;
		ts->tv_nsec = (long)(take32(f) % 2000000);
		if (a % 16 == 0)
			ts->tv_nsec = 1000000000L + (a & 7);  /* EINVAL */
		else if (a % 16 == 1)
			ts->tv_nsec = -1 - (long)(a & 7);     /* EINVAL */
		else if (a % 16 == 2)
			ts->tv_sec = -1;                      /* EINVAL */
		r = laio_syscall(SYS_nanosleep, b % 16 == 0 ? NULL : ts, 0L, 0L, 0L, 0L, 0L);
		break;
	}
	case K_GETPID:
		r = laio_syscall(SYS_getpid, 0L, 0L, 0L, 0L, 0L, 0L);
		break;
	default: /* K_LSEEK */
		c.fd = pick_fd(f, a);
		r = laio_syscall(SYS_lseek, (long)c.fd, (long)(int32_t)take32(f), (long)(b % 5), 0L,
				 0L, 0L);
		break;
	}
	int e = errno;
	void *h = laio_gethandle();
	if (r == -1 && e == EINPROGRESS) {
		CHECK(h != NULL, "EINPROGRESS without a handle");
		CHECK(find(f, h) == NULL, "handle %p is already in flight", h);
		c.h = h;
		f->flight[f->nflight++] = c;
		f->nfree--;
		last_handle = h;
	} else {
		CHECK(h == NULL, "call kind %d returned %ld but laio_gethandle() is %p", kind, r, h);
		check_result(f, &c, r, r == -1 ? e : 0);
		last_handle = NULL;
	}
}

static void op_poll(struct fuzz *f)
{
	uint8_t a = take(f), b = take(f);
	struct laio_completion c[9];
	int n = a % 10 - 1;                 /* -1 .. 8 */
	struct laio_completion *arr = (b & 0x80) ? NULL : c;
	struct timespec ts = { 0, (long)(b & 0x3f) * 30000 }, *tp = &ts;
	bool bad_ts = false;
	switch (b % 8) {
	case 0:
		tp = f->nflight == 0 ? NULL : &ts; /* NULL only when it cannot wait forever */
		break;
	case 1:
		ts.tv_nsec = 1000000000L;
		bad_ts = true;
		break;
	case 2:
		ts.tv_sec = -1;
		bad_ts = true;
		break;
	}
	bool einval = n < 0 || (n > 0 && !arr) || (tp && bad_ts);
	errno = 0;
	int r = laio_poll(arr, n, tp);
	if (einval) {
		CHECK(r == -1 && errno == EINVAL, "laio_poll(%p, %d, bad=%d): %d %s", (void *)arr, n,
		      bad_ts, r, strerror(errno));
		return;
	}
	CHECK(r >= 0 && r <= n, "laio_poll(%d): %d %s", n, r, strerror(errno));
	take_completions(f, c, r);
}

static void op_cancel(struct fuzz *f)
{
	uint8_t a = take(f);
	void *p;
	int want; /* 0: in flight; 1: reported; 2: garbage */
	int junk;
	switch (a % 6) {
	case 0:
	case 1:
		if (!f->nflight)
			return;
		p = f->flight[take(f) % f->nflight].h;
		want = 0;
		break;
	case 2:
		if (!f->nseen)
			return;
		p = f->seen[take(f) % f->nseen];
		want = find(f, p) ? 0 : 1; /* a reported handle may be in flight again */
		break;
	case 3:
		if (!f->nflight)
			return;
		p = (char *)f->flight[0].h + 1 + take(f) % 64;
		want = 2;
		break;
	case 4:
		p = (a & 0x80) ? NULL : (void *)&junk;
		want = 2;
		break;
	default:
		p = (void *)(uintptr_t)take32(f);
		want = find(f, p) ? 0 : was_seen(f, p) ? 1 : 2;
		break;
	}
	errno = 0;
	int r = laio_cancel(p);
	int e = errno;
	if (want == 0) {
		CHECK(r == 0 || (r == -1 && e == ENOENT), "cancel of a call in flight: %d %s", r,
		      strerror(e));
		if (r == 0)
			find(f, p)->cancelled = true;
	} else if (want == 1) {
		CHECK(r == -1 && (e == ENOENT || e == EINVAL), "cancel of a reported handle: %d %s",
		      r, strerror(e));
	} else {
		CHECK(r == -1 && e == EINVAL, "cancel of garbage %p: %d %s", p, r, strerror(e));
	}
}

static void op_feed(struct fuzz *f)
{
	uint8_t a = take(f), n = take(f) % 64 + 1;
	static const int wr[] = { 1, 3, 4, 5 }; /* the ends one writes to */
	int i = wr[a % 4];
	if (!f->open[i])
		return;
	char buf[64];
	memset(buf, 'F', sizeof buf);
	int fl = fcntl(f->fd[i], F_GETFL);
	fcntl(f->fd[i], F_SETFL, fl | O_NONBLOCK);
	if (write(f->fd[i], buf, n) < 0)
		CHECK(errno == EAGAIN || errno == EPIPE || errno == ECONNRESET, "feed: %s",
		      strerror(errno));
	fcntl(f->fd[i], F_SETFL, fl);
}

static void op_drain(struct fuzz *f)
{
	static const int rd[] = { 0, 2, 4, 5 };
	int i = rd[take(f) % 4];
	if (!f->open[i])
		return;
	char buf[4096];
	int fl = fcntl(f->fd[i], F_GETFL);
	fcntl(f->fd[i], F_SETFL, fl | O_NONBLOCK);
	if (read(f->fd[i], buf, sizeof buf) < 0)
		CHECK(errno == EAGAIN || errno == ECONNRESET, "drain: %s", strerror(errno));
	fcntl(f->fd[i], F_SETFL, fl);
}

static void op_init(struct fuzz *f)
{
	uint8_t a = take(f), b = take(f);
	struct laio_config c = { .detector = (enum laio_detector)(a % 7), .max_inflight = 0 };
	if (own_detector == LAIO_DETECT_AUTO && (int)c.detector < LAIO_DETECT_COUNT)
		c.detector = LAIO_DETECT_AUTO; /* keep: the auto thread stays auto */
	if (b & 1)
		c.max_inflight = (b & 2) ? -(int)(b >> 2) - 1 : (int)(b >> 2) + 1;
	bool bad = (int)c.detector >= LAIO_DETECT_COUNT || c.max_inflight < 0;
	errno = 0;
	int r = laio_init(&c);
	int e = errno;
	if (bad)
		CHECK(r == -1 && e == EINVAL, "laio_init(bad): %d %s", r, strerror(e));
	else if (f->nflight > 0)
		CHECK(r == -1 && e == EBUSY, "laio_init while busy: %d %s", r, strerror(e));
	else
		CHECK(r == 0 || (r == -1 && e == ENOTSUP), "laio_init: %d %s", r, strerror(e));
	if (r == 0) {
		if (c.detector != LAIO_DETECT_AUTO)
			f->detector = (int)c.detector;
		if (c.max_inflight > 0)
			inflight_limit = c.max_inflight;
	}
}

static void op_misc(struct fuzz *f)
{
	switch (take(f) % 3) {
	case 0:
		CHECK(laio_gethandle() == last_handle, "laio_gethandle %p, last %p",
		      laio_gethandle(), last_handle);
		break;
	case 1: {
		int fd = laio_fd();
		CHECK(fd >= 0 && (f->efd < 0 || fd == f->efd), "laio_fd %d (was %d)", fd, f->efd);
		f->efd = fd;
		break;
	}
	default:
		CHECK(strcmp(laio_detector_name(SYS_read), "") != 0, "detector name");
		break;
	}
}

/* End of the input: every call completes, then the descriptors go. */
static void finish(struct fuzz *f)
{
	double end;
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	end = (double)t0.tv_sec + 10;
	char buf[4096];
	memset(buf, 'E', sizeof buf);
	while (f->nflight > 0) {
		/* unblock: data for every reader, room for every writer */
		static const int wr[] = { 1, 3, 4, 5 }, rd[] = { 0, 2, 4, 5 };
		for (int k = 0; k < 4; k++) {
			if (f->open[wr[k]]) {
				int fl = fcntl(f->fd[wr[k]], F_GETFL);
				fcntl(f->fd[wr[k]], F_SETFL, fl | O_NONBLOCK);
				if (write(f->fd[wr[k]], buf, 256) < 0 && errno != EAGAIN &&
				    errno != EPIPE && errno != ECONNRESET)
					CHECK(0, "finish write: %s", strerror(errno));
				fcntl(f->fd[wr[k]], F_SETFL, fl);
			}
			if (f->open[rd[k]]) {
				int fl = fcntl(f->fd[rd[k]], F_GETFL);
				fcntl(f->fd[rd[k]], F_SETFL, fl | O_NONBLOCK);
				if (read(f->fd[rd[k]], buf, sizeof buf) < 0 && errno != EAGAIN &&
				    errno != ECONNRESET)
					CHECK(0, "finish read: %s", strerror(errno));
				fcntl(f->fd[rd[k]], F_SETFL, fl);
			}
		}
		struct laio_completion c[MAX_FLIGHT];
		struct timespec ts = { 0, 2 * 1000 * 1000 };
		int n = laio_poll(c, MAX_FLIGHT, &ts);
		CHECK(n >= 0, "laio_poll: %s", strerror(errno));
		take_completions(f, c, n);
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		CHECK((double)now.tv_sec < end, "%d call(s) never completed", f->nflight);
	}
	struct laio_completion c[4];
	struct timespec zero = { 0, 0 };
	CHECK(laio_poll(c, 4, &zero) == 0, "a completion after the last call was reported");
	check_stats(f);
	for (int i = 0; i < NFD; i++)
		if (f->open[i])
			close(f->fd[i]);
	/* the thread's own detector and the default limit again */
	struct laio_config cfg = { .detector = (enum laio_detector)own_detector,
				   .max_inflight = 4096 };
	CHECK(laio_init(&cfg) == 0, "laio_init(own): %s", strerror(errno));
	inflight_limit = 4096;
}

static void run_input(const uint8_t *data, size_t size)
{
	static struct fuzz fz;
	struct fuzz *f = &fz;
	memset(f, 0, sizeof *f);
	f->p = data;
	f->end = data + size;
	f->pid = getpid();
	f->efd = -1;
	for (int i = 0; i <= MAX_FLIGHT; i++)
		f->free_slots[f->nfree++] = i;
	f->detector = own_detector;
	(void)take(f); /* the first byte chose the thread, hence the detector */
	int p[2], q[2], s[2];
	if (pipe2(p, O_CLOEXEC) || pipe2(q, O_CLOEXEC) ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s))
		abort();
	int m = (int)syscall(SYS_memfd_create, "fuzz", 1u /* MFD_CLOEXEC */);
	int fds[NFD] = { p[0], p[1], q[0], q[1], s[0], s[1], m };
	for (int i = 0; i < NFD; i++) {
		f->fd[i] = fds[i];
		f->open[i] = fds[i] >= 0;
	}
	if (f->open[6] && write(m, "memfd contents", 14) != 14)
		abort();
	for (int n = 0; n < MAX_OPS && f->p < f->end; n++) {
		uint8_t op = take(f);
		switch (op % 16) {
		case 0: case 1: op_call(f, K_READ); break;
		case 2: op_call(f, K_WRITE); break;
		case 3: op_call(f, K_RECV); break;
		case 4: op_call(f, K_CLOSE); break;
		case 5: op_call(f, K_SLEEP); break;
		case 6: op_call(f, K_GETPID); break;
		case 7: op_call(f, K_LSEEK); break;
		case 8: case 9: op_poll(f); break;
		case 10: op_cancel(f); break;
		case 11: op_feed(f); break;
		case 12: op_drain(f); break;
		case 13: op_init(f); break;
		default: op_misc(f); break;
		}
		check_stats(f);
	}
	finish(f);
}

/* ---- the LAIO threads: one per detector, living across inputs ---- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static const uint8_t *job_data;
static size_t job_size;
static int job_thread;  /* which LAIO thread runs it */
static int job_state;   /* 0 idle, 1 posted, 2 done */
static int nthreads;    /* LAIO threads (one per detector that works here) */
static int thread_det[5];

static void *laio_thread(void *arg)
{
	int me = (int)(intptr_t)arg;
	own_detector = thread_det[me];
	struct laio_config cfg = { .detector = (enum laio_detector)own_detector };
	if (laio_init(&cfg) != 0) {
		if (errno != ENOTSUP)
			abort();
		own_detector = LAIO_DETECT_AUTO; /* the upcall detector cannot work here */
	}
	for (;;) {
		pthread_mutex_lock(&mu);
		while (job_state != 1 || job_thread != me)
			pthread_cond_wait(&cv, &mu);
		const uint8_t *d = job_data;
		size_t n = job_size;
		pthread_mutex_unlock(&mu);
		run_input(d, n);
		pthread_mutex_lock(&mu);
		job_state = 2;
		pthread_cond_broadcast(&cv);
		pthread_mutex_unlock(&mu);
	}
	return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	signal(SIGPIPE, SIG_IGN); /* writes to a pipe whose reader closed: EPIPE, not death */
	for (int d = 0; d < LAIO_DETECT_COUNT; d++) {
		thread_det[nthreads] = d;
		pthread_t t;
		if (pthread_create(&t, NULL, laio_thread, (void *)(intptr_t)nthreads) != 0)
			abort();
		nthreads++;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pthread_mutex_lock(&mu);
	job_thread = size ? data[0] % nthreads : 0;
	job_data = data;
	job_size = size;
	job_state = 1;
	pthread_cond_broadcast(&cv);
	while (job_state != 2)
		pthread_cond_wait(&cv, &mu);
	job_state = 0;
	pthread_mutex_unlock(&mu);
	return 0;
}
