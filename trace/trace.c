/*
 * trace.c - stderr trace lines and the JSON timeline of both upper layers (trace.h,
 * docs/tracing.md).
 *
 * Everything here may run in an upcall handler, on whatever kernel thread now runs the VP, while
 * another kernel thread of the same flow is blocked somewhere in libc holding its locks (stdio's
 * included). So no stdio stream and no malloc on these paths: lines are formatted into a stack
 * buffer and written with one write(2); timeline records are copied into a preallocated buffer
 * and formatted by hand into a static one. Locks are spinlocks of our own, held only around a
 * copy or a write(2) and never across anything that could block in LAIO.
 */
#include <sys/syscall.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "trace.h"


static const char *const call_names[] = {
#include "syscall-names.h"
};

static uint64_t t0;

/* CLOCK_MONOTONIC in ns: the clock of the shim's timestamps (tm_done_ns) too */
static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t sa_trace_now(void)
{
	return mono_ns() - t0;
}

const char *sa_trace_call_name(long nr, char buf[24])
{
	if (nr >= 0 && (size_t)nr < sizeof call_names / sizeof call_names[0] && call_names[nr])
		return call_names[nr];
	snprintf(buf, 24, "syscall %ld", nr);
	return buf;
}

uint64_t sa_trace_since_origin(uint64_t mono_ns)
{
	return mono_ns > t0 ? mono_ns - t0 : 0;
}

/* How many arguments a call takes, for the common ones: the registers of the others are left
 * over from the caller's code, and showing them would mislead. The rest show all six. */
int sa_trace_nargs(long nr)
{
	switch (nr) {
	case SYS_getpid: case SYS_gettid: case SYS_getppid: case SYS_sched_yield: case SYS_sync:
	case SYS_pause: case SYS_getuid: case SYS_geteuid:
		return 0;
	case SYS_close: case SYS_fsync: case SYS_fdatasync: case SYS_dup: case SYS_exit:
	case SYS_exit_group: case SYS_pipe: case SYS_brk: case SYS_chdir: case SYS_fchdir:
	case SYS_rmdir: case SYS_unlink: case SYS_uname: case SYS_epoll_create1: case SYS_umask:
	case SYS_syncfs: case SYS_alarm: case SYS_times:
		return 1;
	case SYS_nanosleep: case SYS_pipe2: case SYS_dup2: case SYS_fstat: case SYS_stat:
	case SYS_lstat: case SYS_access: case SYS_kill: case SYS_listen: case SYS_shutdown:
	case SYS_munmap: case SYS_mkdir: case SYS_creat: case SYS_rename: case SYS_link:
	case SYS_symlink: case SYS_truncate: case SYS_ftruncate: case SYS_flock: case SYS_fchmod:
	case SYS_chmod: case SYS_gettimeofday: case SYS_clock_gettime: case SYS_clock_getres:
	case SYS_getrusage: case SYS_eventfd2: case SYS_timerfd_create: case SYS_tkill:
		return 2;
	case SYS_read: case SYS_write: case SYS_open: case SYS_lseek: case SYS_readv:
	case SYS_writev: case SYS_ioctl: case SYS_fcntl: case SYS_connect: case SYS_accept:
	case SYS_poll: case SYS_getdents64: case SYS_dup3: case SYS_mprotect: case SYS_madvise:
	case SYS_socket: case SYS_bind: case SYS_getsockname: case SYS_getpeername:
	case SYS_sendmsg: case SYS_recvmsg: case SYS_fchown: case SYS_chown: case SYS_readlink:
	case SYS_mknod: case SYS_execve: case SYS_mkdirat: case SYS_unlinkat: case SYS_faccessat:
	case SYS_fchmodat: case SYS_tgkill: case SYS_msync: case SYS_mincore: case SYS_readahead:
		return 3;
	case SYS_pread64: case SYS_pwrite64: case SYS_openat: case SYS_sendfile:
	case SYS_epoll_wait: case SYS_epoll_ctl: case SYS_rt_sigaction: case SYS_rt_sigprocmask:
	case SYS_accept4: case SYS_socketpair: case SYS_clock_nanosleep: case SYS_newfstatat:
	case SYS_wait4: case SYS_fadvise64: case SYS_fallocate: case SYS_sync_file_range:
	case SYS_renameat: case SYS_tee: case SYS_readlinkat: case SYS_recvmmsg: case SYS_sendmmsg:
		return 4;
	case SYS_preadv: case SYS_pwritev: case SYS_select: case SYS_setsockopt:
	case SYS_getsockopt: case SYS_mremap: case SYS_statx: case SYS_linkat: case SYS_renameat2:
	case SYS_ppoll: case SYS_waitid:
		return 5;
	}
	return 6;
}

void sa_trace_args(char *buf, size_t size, long nr, const long args[6])
{
	int na = sa_trace_nargs(nr);
	size_t n = 0;
	buf[0] = 0;
	for (int i = 0; i < na && n < size; i++) {
		long v = args[i];
		int w = v > -65536 && v < (1L << 32)
			? snprintf(buf + n, size - n, "%s%ld", i ? ", " : "", v)
			: snprintf(buf + n, size - n, "%s%#lx", i ? ", " : "", (unsigned long)v);
		if (w < 0)
			break;
		n += (size_t)w;
	}
}

void sa_trace_detector_setup(char *buf, size_t size, struct sa_mailbox *mb, int configured)
{
	/* auto resolves per call: read has a non-blocking form to probe, nanosleep has none */
	const char *nb = sa_detector_name(mb, SYS_read), *other = sa_detector_name(mb, SYS_nanosleep);
	if (strcmp(nb, other) == 0)
		snprintf(buf, size, "%s: %s for every call", sa_trace_detector_name(configured), nb);
	else
		snprintf(buf, size, "%s: %s for calls with a non-blocking form, %s for the others",
			 sa_trace_detector_name(configured), nb, other);
	const char *why, *cg = sa_cgroup(mb, &why);
	size_t n = strlen(buf);
	if (n < size && strcmp(cg, "off") == 0)
		snprintf(buf + n, size - n, "; no cpu cgroup of its own: %s", why);
	else if (n < size)
		snprintf(buf + n, size - n, "; %s", why);
}

const char *sa_trace_detector_name(int detector)
{
	static const char *const names[] = { "auto", "upcall", "probe", "watchdog", "eager", "idle" };
	return detector >= 0 && detector < SA_DETECT_COUNT ? names[detector] : "?";
}

int sa_trace_tid(struct sa_mailbox *mb)
{
	int tid = sa_runner_tid(mb);
	return tid ? tid : (int)syscall(SYS_gettid);
}

static unsigned long handles, vps;

unsigned long sa_trace_next_handle(void)
{
	return __atomic_add_fetch(&handles, 1, __ATOMIC_RELAXED);
}

int sa_trace_next_vp(void)
{
	return (int)__atomic_fetch_add(&vps, 1, __ATOMIC_RELAXED);
}

bool sa_trace_env_on(const char *name)
{
	const char *e = getenv(name);
	return e && *e && strcmp(e, "0") != 0 && strcmp(e, "no") != 0 && strcmp(e, "off") != 0;
}

/* A pipe makes stdout fully buffered: the program's lines would come out at exit, after every
 * trace line, however they were ordered in time. Line buffering writes each line when it is
 * complete, so a trace line written meanwhile lands between the right two. */
void sa_trace_stdout_lines(void)
{
	static int done;
	if (__atomic_exchange_n(&done, 1, __ATOMIC_RELAXED))
		return;
	fflush(stdout);
	setvbuf(stdout, NULL, _IOLBF, 0);
}

void sa_trace_vline(const char *layer, int vp, int tid, const char *fmt, va_list ap)
{
	int saved = errno;
	char buf[512];
	uint64_t ns = sa_trace_now();
	int n = vp >= 0
		? snprintf(buf, sizeof buf, "%5lu.%03lu ms  %s vp%d  kt %d  ",
			   (unsigned long)(ns / 1000000u), (unsigned long)(ns / 1000u % 1000u), layer,
			   vp, tid)
		: snprintf(buf, sizeof buf, "%5lu.%03lu ms  %s  kt %d  ",
			   (unsigned long)(ns / 1000000u), (unsigned long)(ns / 1000u % 1000u), layer,
			   tid);
	if (n > 0 && (size_t)n < sizeof buf)
		n += vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
	if (n >= (int)sizeof buf - 1)
		n = (int)sizeof buf - 2;
	buf[n++] = '\n';
	if (write(2, buf, (size_t)n) < 0) {
		/* best effort: a trace must never change what the program sees */
	}
	errno = saved;
}

/* ---- the timeline file ---- */

/* What each kernel thread was seen doing: its track's name. */
enum { R_RUNNER = 1, R_CLAIMER = 2, R_EXEC = 4 };
#define NTIDS 1024

struct sa_tl_file {
	char *path;
	struct sa_tl_file *next; /* every file the process opened, each for its whole life */
	const char *layer;
	int fd;
	uint32_t lock;           /* the file, obuf, the tid table, the buffer list */
	bool any;                /* an event was written: the next one needs a comma */
	bool closed;
	struct sa_tl_buf *bufs;
	size_t on;
	char obuf[16384];
	struct { int32_t tid; int32_t vp; unsigned roles; } tids[NTIDS];
};

static struct sa_tl_file *files;
static uint32_t files_lock;

static void spin_lock(uint32_t *lk)
{
	while (__atomic_exchange_n(lk, 1, __ATOMIC_ACQUIRE))
		while (__atomic_load_n(lk, __ATOMIC_RELAXED))
			__builtin_ia32_pause();
}

static void spin_unlock(uint32_t *lk)
{
	__atomic_store_n(lk, 0, __ATOMIC_RELEASE);
}

static void o_drain(struct sa_tl_file *f)
{
	size_t off = 0;
	while (off < f->on) {
		ssize_t w = write(f->fd, f->obuf + off, f->on - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break; /* disk full or the like: the timeline is cut short, the program goes on */
		off += (size_t)w;
	}
	f->on = 0;
}

static void o_str(struct sa_tl_file *f, const char *s)
{
	size_t len = strlen(s);
	if (f->on + len > sizeof f->obuf)
		o_drain(f);
	if (len > sizeof f->obuf)
		len = sizeof f->obuf;
	memcpy(f->obuf + f->on, s, len);
	f->on += len;
}

static void o_u(struct sa_tl_file *f, unsigned long long v)
{
	char tmp[24];
	int i = (int)sizeof tmp - 1;
	tmp[i] = 0;
	do
		tmp[--i] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	o_str(f, tmp + i);
}

static void o_i(struct sa_tl_file *f, long long v)
{
	if (v < 0) {
		o_str(f, "-");
		o_u(f, 0ull - (unsigned long long)v);
	} else {
		o_u(f, (unsigned long long)v);
	}
}

/* Microseconds, the trace-event unit, with the nanoseconds as decimals. */
static void o_us(struct sa_tl_file *f, uint64_t ns)
{
	char frac[5] = { '.', (char)('0' + ns / 100 % 10), (char)('0' + ns / 10 % 10),
			 (char)('0' + ns % 10), 0 };
	o_u(f, ns / 1000);
	o_str(f, frac);
}

/* An argument: a number when a JSON reader keeps it exact and it looks like one, else the hex
 * string an address or flag word reads best as. */
static void o_arg(struct sa_tl_file *f, long v)
{
	if (v > -65536 && v < (1L << 32)) {
		o_i(f, v);
		return;
	}
	static const char hex[] = "0123456789abcdef";
	char tmp[20];
	int i = (int)sizeof tmp - 1;
	unsigned long u = (unsigned long)v;
	tmp[i--] = 0;
	tmp[i--] = '"';
	do
		tmp[i--] = hex[u & 15];
	while ((u >>= 4) != 0);
	tmp[i--] = 'x';
	tmp[i--] = '0';
	tmp[i] = '"';
	o_str(f, tmp + i);
}

/* `{"ph":"X","cat":"laio","name":"<name>","pid":P,"tid":T,"ts":U` */
static void o_head(struct sa_tl_file *f, const char *ph, const char *cat, const char *name,
		   int tid, uint64_t ts)
{
	o_str(f, f->any ? ",\n{\"ph\":\"" : "\n{\"ph\":\"");
	f->any = true;
	o_str(f, ph);
	o_str(f, "\",\"cat\":\"");
	o_str(f, cat);
	o_str(f, "\",\"name\":\"");
	o_str(f, name);
	o_str(f, "\",\"pid\":");
	o_i(f, getpid());
	o_str(f, ",\"tid\":");
	o_i(f, tid);
	o_str(f, ",\"ts\":");
	o_us(f, ts);
}

static void o_key(struct sa_tl_file *f, const char *key)
{
	o_str(f, ",\"");
	o_str(f, key);
	o_str(f, "\":");
}

static void o_kstr(struct sa_tl_file *f, const char *key, const char *v)
{
	o_key(f, key);
	o_str(f, "\"");
	o_str(f, v);
	o_str(f, "\"");
}

static void o_ki(struct sa_tl_file *f, const char *key, long long v)
{
	o_key(f, key);
	o_i(f, v);
}

static void o_ku(struct sa_tl_file *f, const char *key, unsigned long long v)
{
	o_key(f, key);
	o_u(f, v);
}

/* The call's outcome and, in the runtime, its user thread. */
static void o_result(struct sa_tl_file *f, const struct sa_tl_rec *r)
{
	o_ki(f, "result", r->ret);
	o_ki(f, "errno", r->err);
}

static void o_thread(struct sa_tl_file *f, const struct sa_tl_rec *r)
{
	if (r->thread)
		o_ku(f, "thread", r->thread);
}

static void o_handle(struct sa_tl_file *f, unsigned long hno)
{
	o_key(f, "handle");
	o_str(f, "\"h");
	o_u(f, hno);
	o_str(f, "\"");
}

static const char *direction(const struct sa_tl_rec *r)
{
	return r->moved ? "call moved" : "VP moved to a spare";
}

/* A flow arrow: the blocked call (id 2h) to the flow that went on, and (2h+1) to where the
 * flow learns of its completion. Flow starts bind to the slice around them; a finish with
 * "bp":"e" to the slice around it, else to the next slice on its thread. */
static void o_flow(struct sa_tl_file *f, const char *ph, unsigned long id, const char *name,
		   int tid, uint64_t ts, bool enclosing)
{
	o_head(f, ph, "flow", name, tid, ts);
	o_str(f, ",\"id\":");
	o_u(f, id);
	if (enclosing)
		o_str(f, ",\"bp\":\"e\"");
	o_str(f, "}");
}

static void role(struct sa_tl_file *f, int tid, int vp, unsigned roles)
{
	if (tid <= 0)
		return;
	unsigned h = (unsigned)tid % NTIDS;
	for (unsigned i = 0; i < NTIDS; i++, h = (h + 1) % NTIDS) {
		if (f->tids[h].tid == tid || f->tids[h].tid == 0) {
			if (f->tids[h].tid == 0) {
				f->tids[h].tid = tid;
				f->tids[h].vp = -1;
			}
			if (roles & R_RUNNER && f->tids[h].vp < 0)
				f->tids[h].vp = vp;
			f->tids[h].roles |= roles;
			return;
		}
	}
}

static void o_rec(struct sa_tl_file *f, const struct sa_tl_rec *r)
{
	char nb[24], hb[32];
	const char *call = sa_trace_call_name(r->nr, nb);
	switch (r->kind) {
	case SA_TL_CALL: {
		int tid = r->hno ? r->call_tid : r->tid;
		uint64_t end = r->t_end > r->ts ? r->t_end : r->ts;
		o_head(f, "X", f->layer, call, tid, r->ts);
		o_str(f, ",\"dur\":");
		o_us(f, end - r->ts);
		o_str(f, ",\"args\":{\"args\":[");
		int na = sa_trace_nargs(r->nr);
		for (int i = 0; i < na; i++) {
			if (i)
				o_str(f, ",");
			o_arg(f, r->args[i]);
		}
		o_str(f, "]");
		o_result(f, r);
		o_ki(f, "vp", r->vp);
		o_thread(f, r);
		if (r->hno) {
			o_handle(f, r->hno);
			o_kstr(f, "detector", sa_trace_detector_name(r->detector));
			o_kstr(f, "direction", direction(r));
		}
		o_str(f, "}}");
		if (r->hno) {
			uint64_t tb = r->t_block < r->ts ? r->ts : r->t_block > end ? end : r->t_block;
			o_flow(f, "s", 2 * r->hno, "handoff", tid, tb, false);
			o_flow(f, "s", 2 * r->hno + 1, "completion", tid, end > r->ts ? end - 1 : end,
			       false);
			role(f, tid, r->vp, r->moved ? R_EXEC : R_RUNNER);
		} else {
			role(f, tid, r->vp, R_RUNNER);
		}
		break;
	}
	case SA_TL_BLOCKED:
		o_head(f, "i", f->layer, "upcall BLOCKED", r->tid, r->ts);
		o_str(f, ",\"s\":\"t\",\"args\":{");
		o_str(f, "\"call\":\"");
		o_str(f, call);
		o_str(f, "\"");
		o_handle(f, r->hno);
		o_kstr(f, "detector", sa_trace_detector_name(r->detector));
		o_kstr(f, "direction", direction(r));
		o_ki(f, "call_tid", r->call_tid);
		o_ki(f, "vp", r->vp);
		o_thread(f, r);
		o_str(f, "}}");
		o_flow(f, "f", 2 * r->hno, "handoff", r->tid, r->ts, false);
		role(f, r->tid, r->vp, R_RUNNER | (r->moved ? 0 : R_CLAIMER));
		break;
	case SA_TL_UNBLOCKED:
		o_head(f, "i", f->layer, "upcall UNBLOCKED", r->tid, r->ts);
		o_str(f, ",\"s\":\"t\",\"args\":{\"finished\":");
		o_u(f, r->count);
		o_ku(f, "timedout", r->timedout);
		o_ki(f, "vp", r->vp);
		o_str(f, "}}");
		role(f, r->tid, r->vp, R_RUNNER);
		break;
	case SA_TL_POLL:
		o_head(f, "X", f->layer, "laio_poll", r->tid, r->ts);
		o_str(f, ",\"dur\":");
		o_us(f, r->t_end > r->ts ? r->t_end - r->ts : 0);
		o_str(f, ",\"args\":{\"reported\":");
		o_u(f, r->count);
		o_ki(f, "vp", r->vp);
		o_str(f, "}}");
		role(f, r->tid, r->vp, R_RUNNER);
		break;
	case SA_TL_DONE:
		snprintf(hb, sizeof hb, "h%lu finished", r->hno);
		o_head(f, "i", f->layer, hb, r->tid, r->ts);
		o_str(f, ",\"s\":\"t\",\"args\":{\"call\":\"");
		o_str(f, call);
		o_str(f, "\"");
		o_handle(f, r->hno);
		o_result(f, r);
		o_thread(f, r);
		o_str(f, "}}");
		/* laio reports inside laio_poll()'s span; a runtime thread resumes next */
		o_flow(f, "f", 2 * r->hno + 1, "completion", r->tid, r->ts, !r->thread);
		role(f, r->tid, r->vp, R_RUNNER);
		break;
	}
}

void sa_tl_flush(struct sa_tl_buf *b)
{
	struct sa_tl_file *f = b->file;
	spin_lock(&b->lock);
	spin_lock(&f->lock);
	if (!f->closed) {
		for (unsigned i = 0; i < b->n; i++)
			o_rec(f, &b->rec[i]);
		o_drain(f);
	}
	spin_unlock(&f->lock);
	b->n = 0;
	spin_unlock(&b->lock);
}

void sa_tl_add(struct sa_tl_buf *b, const struct sa_tl_rec *r)
{
	int saved = errno;
	spin_lock(&b->lock);
	b->rec[b->n++] = *r;
	bool full = b->n == SA_TL_RECS;
	spin_unlock(&b->lock);
	if (full)
		sa_tl_flush(b);
	errno = saved;
}

void sa_trace_call_start(struct sa_trace_call *c, long nr, const long args[6], bool timeline)
{
	c->nr = nr;
	memcpy(c->args, args, sizeof c->args);
	c->t_start = timeline ? sa_trace_now() : 0;
	c->hno = 0;
}

void sa_trace_call_blocked(struct sa_trace_call *c, const struct sa_upcall *u, bool timeline)
{
	c->hno = sa_trace_next_handle();
	c->call_tid = u->sa_call_tid;
	c->detector = (int8_t)u->sa_detector;
	c->moved = (uint8_t)u->sa_moved;
	c->t_block = timeline ? sa_trace_now() : 0;
}

const char *sa_trace_call_text(char *buf, size_t size, const struct sa_trace_call *c)
{
	char nb[24], ab[160];
	sa_trace_args(ab, sizeof ab, c->nr, c->args);
	snprintf(buf, size, "%s(%s)", sa_trace_call_name(c->nr, nb), ab);
	return buf;
}

const char *sa_trace_handoff(char *buf, size_t size, const struct sa_trace_call *c)
{
	if (c->moved)
		snprintf(buf, size, "%s caught it: call moved to kt %d",
			 sa_trace_detector_name(c->detector), c->call_tid);
	else
		snprintf(buf, size, "%s caught it: VP moved to a spare (this kt), kt %d keeps the call",
			 sa_trace_detector_name(c->detector), c->call_tid);
	return buf;
}

static struct sa_tl_rec call_rec(const struct sa_trace_call *c, int kind, int vp, int tid,
				 unsigned long thread)
{
	struct sa_tl_rec r = { .kind = (uint8_t)kind, .detector = c->detector, .moved = c->moved,
			       .tid = tid, .call_tid = c->call_tid, .vp = vp, .nr = c->nr,
			       .hno = c->hno, .thread = thread };
	memcpy(r.args, c->args, sizeof r.args);
	return r;
}

void sa_tl_call(struct sa_tl_buf *b, const struct sa_trace_call *c, int vp, int tid,
		unsigned long thread, long ret, int err)
{
	struct sa_tl_rec r = call_rec(c, SA_TL_CALL, vp, tid, thread);
	r.ret = ret;
	r.err = ret == -1 ? err : 0;
	r.ts = c->t_start;
	r.t_end = sa_trace_now();
	sa_tl_add(b, &r);
}

void sa_tl_call_finished(struct sa_tl_buf *b, const struct sa_trace_call *c, int vp,
			 unsigned long thread, long ret, int err, uint64_t done_mono_ns)
{
	struct sa_tl_rec r = call_rec(c, SA_TL_CALL, vp, c->call_tid, thread);
	r.ret = ret;
	r.err = err;
	r.ts = c->t_start;
	r.t_block = c->t_block;
	r.t_end = sa_trace_since_origin(done_mono_ns);
	sa_tl_add(b, &r);
}

void sa_tl_blocked(struct sa_tl_buf *b, const struct sa_trace_call *c, int vp, int tid,
		   unsigned long thread)
{
	struct sa_tl_rec r = call_rec(c, SA_TL_BLOCKED, vp, tid, thread);
	r.ts = c->t_block;
	sa_tl_add(b, &r);
}

void sa_tl_done(struct sa_tl_buf *b, const struct sa_trace_call *c, int vp, int tid,
		unsigned long thread, long ret, int err)
{
	struct sa_tl_rec r = call_rec(c, SA_TL_DONE, vp, tid, thread);
	r.ret = ret;
	r.err = err;
	r.ts = sa_trace_now();
	sa_tl_add(b, &r);
}

static void o_name(struct sa_tl_file *f, int tid, const char *kind, const char *name)
{
	o_head(f, "M", f->layer, kind, tid, 0);
	o_str(f, ",\"args\":{\"name\":\"");
	o_str(f, name);
	o_str(f, "\"}}");
}

/* The tracks' names, from what each kernel thread was seen doing. */
static void o_names(struct sa_tl_file *f)
{
	char name[160], comm[32] = "";
	int fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, comm, sizeof comm - 1);
		comm[n > 0 ? n - 1 : 0] = 0; /* without its newline */
		close(fd);
	}
	for (char *p = comm; *p; p++)
		if (*p == '"' || *p == '\\' || (unsigned char)*p < 32)
			*p = '_';
	o_name(f, 0, "process_name", comm);
	for (int i = 0; i < NTIDS; i++) {
		int tid = f->tids[i].tid;
		unsigned ro = f->tids[i].roles;
		if (!tid)
			continue;
		/* a kernel thread that kept a blocked call became a spare after it: its later
		   life, if any, is named by what it did next */
		if (ro & R_RUNNER)
			snprintf(name, sizeof name, "%svp%d runner (kt %d)",
				 ro & R_CLAIMER ? "spare, then " : "", f->tids[i].vp, tid);
		else
			snprintf(name, sizeof name, "spare%s (kt %d)",
				 ro & R_EXEC ? ": runs moved calls" : "", tid);
		o_name(f, tid, "thread_name", name);
	}
}

static void close_all(void)
{
	spin_lock(&files_lock);
	struct sa_tl_file *all = files;
	spin_unlock(&files_lock);
	for (struct sa_tl_file *f = all; f; f = f->next) {
		spin_lock(&files_lock); /* no buffer is freed meanwhile */
		for (struct sa_tl_buf *b = f->bufs; b; b = b->next)
			sa_tl_flush(b);
		spin_unlock(&files_lock);
		spin_lock(&f->lock);
		if (!f->closed) {
			o_names(f);
			o_str(f, "\n],\"displayTimeUnit\":\"ms\"}\n");
			o_drain(f);
			close(f->fd);
			f->closed = true;
		}
		spin_unlock(&f->lock);
	}
}

/* The child of fork() shares the file with its parent: it writes nothing. */
static void atfork_child(void)
{
	for (struct sa_tl_file *f = files; f; f = f->next)
		f->closed = true;
}

/* A new timeline file, or NULL with errno (said on stderr: the program asked for it). */
static struct sa_tl_file *file_new(const char *path, const char *layer)
{
	struct sa_tl_file *f = calloc(1, sizeof(*f));
	char *copy = strdup(path);
	int fd = f && copy ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
	if (fd < 0) {
		int e = f && copy ? errno : ENOMEM;
		free(f);
		free(copy);
		if (strlen(path) > 64)
			fprintf(stderr, "%s: cannot create the timeline %.40s...%s (%zu bytes): %s\n",
				layer, path, path + strlen(path) - 20, strlen(path), strerror(e));
		else
			fprintf(stderr, "%s: cannot create the timeline %s: %s\n", layer, path,
				strerror(e));
		errno = e;
		return NULL;
	}
	f->path = copy;
	f->layer = layer;
	f->fd = fd;
	o_str(f, "{\"traceEvents\":[");
	o_drain(f);
	return f;
}

struct sa_tl_file *sa_tl_open(const char *path, const char *layer)
{
	struct sa_tl_file *f = NULL;
	static bool registered;
	if (!path || !*path) {
		errno = EINVAL;
		return NULL;
	}
	spin_lock(&files_lock);
	for (f = files; f && strcmp(f->path, path) != 0; f = f->next)
		;
	if (!f && (f = file_new(path, layer))) {
		f->next = files;
		files = f;
	}
	int e = errno;
	bool first = f && !registered;
	registered = registered || f;
	spin_unlock(&files_lock);
	if (first) {
		atexit(close_all);
		pthread_atfork(NULL, NULL, atfork_child);
	}
	errno = e;
	return f;
}

struct sa_tl_buf *sa_tl_buf_new(struct sa_tl_file *f)
{
	if (!f)
		return NULL;
	struct sa_tl_buf *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->file = f;
	spin_lock(&files_lock);
	b->next = f->bufs;
	f->bufs = b;
	spin_unlock(&files_lock);
	return b;
}

void sa_tl_buf_free(struct sa_tl_buf *b)
{
	if (!b)
		return;
	sa_tl_flush(b);
	struct sa_tl_file *f = b->file;
	spin_lock(&files_lock);
	for (struct sa_tl_buf **p = &f->bufs; *p; p = &(*p)->next)
		if (*p == b) {
			*p = b->next;
			break;
		}
	spin_unlock(&files_lock);
	free(b);
}

/* One origin for every layer's times; and line-buffered stdout before main() writes. */
__attribute__((constructor)) static void trace_init(void)
{
	t0 = mono_ns();
	if ((sa_trace_env_on("LAIO_TRACE") || sa_trace_env_on("RT_TRACE")))
		sa_trace_stdout_lines();
}
