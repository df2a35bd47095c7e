/*
 * handoff.c - how soon a blocked call comes back with EINPROGRESS, per LAIO block detector, under
 * the conditions a program meets: pinned, unpinned, and beside a CPU hog on every CPU.
 *
 * One sample:
 *     t0 = now; r = laio_syscall(SYS_read, empty_pipe, &c, 1); t1 = now;   (r == -1, EINPROGRESS)
 *     then the data arrives; laio_poll() until the completion comes; t2 = now.
 * The notice is t1 - t0: from just before the call to the caller holding EINPROGRESS. Two
 * sources of data, alternating sample by sample: the caller writes the byte itself after
 * EINPROGRESS ("same thread"), or a writer process, asked through a control pipe only after
 * EINPROGRESS, writes it ("other process": the byte comes from a process the caller had to wake).
 * The completion is t2 minus the time of that write (or of the request to the writer).
 *
 * Placements, in one run and in rounds (every placement and detector once per round) so that a
 * slow phase of a shared machine falls on all of them:
 *   pinned    the program (the caller and every thread it creates) on CPU 0, the writer on the
 *             last CPU, as `make bench` runs pipebench
 *   unpinned  nothing pinned
 *   busy      unpinned, beside one CPU-bound process per CPU (each pinned to its CPU)
 * A read that completes synchronously blocked without being noticed: the watchdog released it
 * after 1 s (a missed block). It is counted; a detector stops in a placement after 3, and the exit
 * status is then 4. Each detector's cell also stops at a time budget, so a detector that is slow
 * under load cannot stretch the run; the samples it got are reported.
 *
 * Last, unpinned: a 2 ms nanosleep after a quiet spell (no call for --quiet-ms, so that whatever
 * the detector keeps running can go to sleep), and the process's CPU time during those spells.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "laio.h"
#include "mb_common.h"
#include "mb_laio.h"

struct det {
	const char *name;
	enum laio_detector d;
};
static const struct det dets[] = {
	{"auto", LAIO_DETECT_AUTO},         {"idle", LAIO_DETECT_IDLE},
	{"probe", LAIO_DETECT_PROBE},       {"upcall", LAIO_DETECT_UPCALL},
	{"watchdog", LAIO_DETECT_WATCHDOG}, {"eager", LAIO_DETECT_EAGER},
};
#define NDET ((int)(sizeof dets / sizeof dets[0]))

enum place { PL_PINNED, PL_UNPINNED, PL_BUSY, NPLACE };
static const char *const place_name[NPLACE] = {"pinned", "unpinned", "busy"};
static const char *const place_what[NPLACE] = {
	"the program on CPU 0, the writer process on the last CPU",
	"nothing pinned",
	"nothing pinned, one CPU-bound process per CPU beside it",
};
enum src { SRC_SAME, SRC_PROC, NSRC };
static const char *const src_name[NSRC] = {"same thread", "other process"};
static const char *const src_key[NSRC] = {"same-thread", "other-process"};

#define WARM 20
#define MAX_MISSED 3

/* The samples of one (placement, detector, source). */
struct series {
	double *lat, *comp; /* ns, `cap` entries */
	long n, cap;
	unsigned long missed;
};

struct cell {
	const struct det *det;
	int place;
	struct series s[NSRC];
	int ran, stopped; /* stopped: MAX_MISSED blocks missed, or laio_init refused */
	char skip[256], used[32];
	double secs;
};

struct cell_run {
	struct cell *c;
	long quota;        /* samples to take this round, both sources together */
	uint64_t budget_ns; /* the warm-up, then the samples, each stop here short of their count */
};

static struct mb_watch watch;
static struct mb_writer writer;

static const char *why_notsup(enum laio_detector d)
{
	return d == LAIO_DETECT_UPCALL ? " (the upcall detector needs perf_event_open of a "
					 "context-switch event: root, CAP_PERFMON or "
					 "perf_event_paranoid <= 1)"
				       : "";
}

/* laio_init for the calling thread; 0 with the reason in `skip` if the detector cannot work here. */
static int init_detector(const struct det *det, char *skip, size_t len)
{
	struct laio_config cfg = {.detector = det->d};
	if (laio_init(&cfg) == 0)
		return 1;
	if (errno != ENOTSUP)
		mb_die("laio_init(%s)", det->name);
	snprintf(skip, len, "laio_init: %s%s", strerror(errno), why_notsup(det->d));
	return 0;
}

static void wait_completion(const char *who, void *h, long want)
{
	struct laio_completion comp;
	mb_poll_one(&comp);
	if (comp.laio_handle != h || comp.laio_return_value != want)
		mb_fail("%s: completion handle %p (expected %p), return %ld (expected %ld), errno %d",
			who, comp.laio_handle, h, comp.laio_return_value, want, comp.laio_errno);
}

/*
 * One blocked read. 1 with the notice and the completion time when it went to the background;
 * 0 when it completed synchronously (the detector missed the block and the watchdog's byte,
 * written to `wfd`, released it).
 */
static int blocked_read(const struct cell *c, int src, int rfd, int wfd, double *lat,
			double *comp)
{
	char b;
	atomic_store(&watch.rescue_fd, wfd);
	atomic_store_explicit(&watch.phase, MB_PH_SYSCALL, memory_order_relaxed);
	uint64_t t0 = mb_now_ns();
	long r = laio_syscall(SYS_read, rfd, &b, 1);
	uint64_t t1 = mb_now_ns();
	int e = errno;
	atomic_store_explicit(&watch.phase, MB_PH_WAIT, memory_order_relaxed);
	if (r == 1)
		return 0;
	if (r != -1 || e != EINPROGRESS)
		mb_fail("%s %s: laio_syscall(SYS_read) on an empty pipe returned %ld (%s)",
			place_name[c->place], c->det->name, r, strerror(e));
	void *h = laio_gethandle();
	uint64_t tw = mb_now_ns();
	if (src == SRC_PROC)
		mb_writer_kick(&writer);
	else if (write(wfd, "x", 1) != 1)
		mb_die("write");
	wait_completion(c->det->name, h, 1);
	*lat = (double)(t1 - t0);
	*comp = (double)(mb_now_ns() - tw);
	return 1;
}

/* One round of a cell, in a fresh thread with its own laio_init. */
static void *cell_main(void *arg)
{
	struct cell_run *run = arg;
	struct cell *c = run->c;
	if (!init_detector(c->det, c->skip, sizeof c->skip)) {
		c->stopped = 1;
		return NULL;
	}
	snprintf(c->used, sizeof c->used, "%s", laio_detector_name(SYS_read));
	int p[2];
	MB_CHECK(pipe2(p, O_CLOEXEC));
	uint64_t t_start = mb_now_ns(), deadline = t_start + run->budget_ns;
	for (long i = 0; i < WARM + run->quota; i++) {
		/* The budget starts again after the warm-up, which it also bounds: a detector slow
		 * enough to spend it warming up still gets measured. */
		if (i < WARM && mb_now_ns() > deadline)
			i = WARM;
		if (i == WARM)
			deadline = mb_now_ns() + run->budget_ns;
		else if (i > WARM && mb_now_ns() > deadline)
			break;
		int src = (int)(i & 1);
		struct series *s = &c->s[src];
		atomic_store_explicit(&watch.progress, (unsigned long)i, memory_order_relaxed);
		double lat, comp;
		int bg = src == SRC_PROC ? blocked_read(c, src, writer.data_rfd, writer.data_wfd,
							&lat, &comp)
					 : blocked_read(c, src, p[0], p[1], &lat, &comp);
		if (!bg) {
			s->missed++;
			if (c->s[SRC_SAME].missed + c->s[SRC_PROC].missed >= MAX_MISSED) {
				mb_note("handoff: %s %s: %d missed blocks (the last at call %ld): "
					"stopping this detector here", place_name[c->place],
					c->det->name, MAX_MISSED, i);
				c->stopped = 1;
				break;
			}
			continue;
		}
		if (i >= WARM && s->n < s->cap) {
			s->lat[s->n] = lat;
			s->comp[s->n] = comp;
			s->n++;
		}
	}
	atomic_store(&watch.rescue_fd, -1);
	atomic_store_explicit(&watch.phase, MB_PH_IDLE, memory_order_relaxed);
	MB_CHECK(close(p[0]));
	MB_CHECK(close(p[1]));
	c->secs += (double)(mb_now_ns() - t_start) / 1e9;
	c->ran = 1;
	return NULL;
}

static void run_thread(void *(*fn)(void *), void *arg)
{
	pthread_t t;
	int e = pthread_create(&t, NULL, fn, arg);
	if (!e)
		e = pthread_join(t, NULL);
	if (e) {
		errno = e;
		mb_die("pthread_create/join");
	}
}

/* The caller (whose threads inherit its mask), the writer and the hogs, as `pl` wants them. */
static void enter_place(int pl, int ncpu)
{
	mb_pin_self(pl == PL_PINNED ? 0 : -1);
	mb_writer_pin(&writer, pl == PL_PINNED ? ncpu - 1 : -1);
	if (pl == PL_BUSY) {
		mb_hogs_start(ncpu, 1);
		struct timespec settle = {0, 50 * 1000 * 1000};
		nanosleep(&settle, NULL);
	}
}

static void leave_place(int pl)
{
	if (pl == PL_BUSY)
		mb_hogs_stop();
}

/* ---- a 2 ms nanosleep after a quiet spell ----------------------------------------------------- */

struct quiet {
	const struct det *det;
	long n;
	int quiet_ms;
	int ran;
	char skip[256], used[32];
	double *lat; /* ns */
	long got;
	unsigned long sync;       /* ran synchronously: the detector did not notice the sleep */
	double cpu_ns, quiet_ns;  /* the process's CPU time during the quiet spells, and their length */
};

static uint64_t process_cpu_ns(void)
{
	struct timespec ts;
	MB_CHECK(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts));
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *quiet_main(void *arg)
{
	struct quiet *q = arg;
	if (!init_detector(q->det, q->skip, sizeof q->skip))
		return NULL;
	snprintf(q->used, sizeof q->used, "%s", laio_detector_name(SYS_nanosleep));
	if (!strcmp(q->used, "none")) {
		snprintf(q->skip, sizeof q->skip, "this detector cannot see a nanosleep block");
		return NULL;
	}
	static const struct timespec two_ms = {0, 2000000};
	const struct timespec spell = {q->quiet_ms / 1000, (q->quiet_ms % 1000) * 1000000L};
	for (long i = 0; i < 3 + q->n; i++) {
		atomic_store_explicit(&watch.progress, (unsigned long)i, memory_order_relaxed);
		uint64_t c0 = process_cpu_ns(), w0 = mb_now_ns();
		nanosleep(&spell, NULL);
		uint64_t c1 = process_cpu_ns(), w1 = mb_now_ns();
		atomic_store_explicit(&watch.phase, MB_PH_SYSCALL, memory_order_relaxed);
		uint64_t t0 = mb_now_ns();
		long r = laio_syscall(SYS_nanosleep, &two_ms, NULL);
		uint64_t t1 = mb_now_ns();
		int e = errno;
		atomic_store_explicit(&watch.phase, MB_PH_WAIT, memory_order_relaxed);
		if (r == 0) {
			if (++q->sync >= MAX_MISSED)
				break;
			continue;
		}
		if (r != -1 || e != EINPROGRESS)
			mb_fail("%s: laio_syscall(SYS_nanosleep) returned %ld (%s)", q->det->name, r,
				strerror(e));
		wait_completion(q->det->name, laio_gethandle(), 0);
		if (i < 3)
			continue;
		q->lat[q->got++] = (double)(t1 - t0);
		q->cpu_ns += (double)(c1 - c0);
		q->quiet_ns += (double)(w1 - w0);
	}
	atomic_store_explicit(&watch.phase, MB_PH_IDLE, memory_order_relaxed);
	q->ran = 1;
	return NULL;
}

/* ---- report ------------------------------------------------------------------------------------ */

/* Bucket edges: 1, 1.5, 2, 3, 5, 7 x 10^k ns, from 100 ns to 10 s. */
#define NEDGE 49
static double edges[NEDGE];

static void make_edges(void)
{
	static const double m[6] = {1, 1.5, 2, 3, 5, 7};
	int k = 0;
	for (double dec = 100; k < NEDGE; dec *= 10)
		for (int i = 0; i < 6 && k < NEDGE; i++)
			edges[k++] = m[i] * dec;
}

static void histogram(const double *v, long n)
{
	long cnt[NEDGE + 1] = {0};
	for (long i = 0; i < n; i++) {
		int b = 0;
		while (b < NEDGE && v[i] >= edges[b])
			b++;
		cnt[b]++; /* bucket b holds [edges[b-1], edges[b]) */
	}
	int lo = 0, hi = NEDGE;
	while (lo < NEDGE && !cnt[lo])
		lo++;
	while (hi > 0 && !cnt[hi])
		hi--;
	long max = 1;
	for (int b = lo; b <= hi; b++)
		if (cnt[b] > max)
			max = cnt[b];
	for (int b = lo; b <= hi; b++) {
		char l[32], h[32], bar[64];
		if (b == 0)
			snprintf(l, sizeof l, "0");
		else
			mb_fmt_ns(edges[b - 1], l, sizeof l);
		if (b == NEDGE)
			snprintf(h, sizeof h, "inf");
		else
			mb_fmt_ns(edges[b], h, sizeof h);
		int w = (int)((double)cnt[b] * 50.0 / (double)max + 0.5);
		if (cnt[b] && !w)
			w = 1;
		memset(bar, '#', (size_t)w);
		bar[w] = '\0';
		printf("  %9s - %-9s |%-50s %6ld %5.1f%%\n", l, h, bar, cnt[b],
		       100.0 * (double)cnt[b] / (double)n);
	}
}

static double pct(const struct series *s, const double *v, double p)
{
	return mb_pct_sorted(v, (size_t)s->n, p);
}

static void print_row(const struct cell *c, int src)
{
	const struct series *s = &c->s[src];
	char a[32] = "-", b[32] = "-", d[32] = "-", e[32] = "-", f[32] = "-";
	if (s->n) {
		mb_fmt_ns(pct(s, s->lat, 50), a, sizeof a);
		mb_fmt_ns(pct(s, s->lat, 90), b, sizeof b);
		mb_fmt_ns(pct(s, s->lat, 99), d, sizeof d);
		mb_fmt_ns(s->lat[s->n - 1], e, sizeof e);
		mb_fmt_ns(pct(s, s->comp, 50), f, sizeof f);
	}
	printf("%-9s %-9s %-9s %-13s %7ld %10s %10s %10s %10s %11s  %lu%s\n", place_name[c->place],
	       c->det->name, c->used, src_name[src], s->n, a, b, d, e, f, s->missed,
	       c->stopped ? " (stopped: misses blocks)" : "");
}

static void csv_row(FILE *f, const char *place, const char *src, const char *det,
		    const char *used, long n, double p50, double p90, double p99, double max,
		    double comp, unsigned long missed, const struct mb_sysinfo *si)
{
	fprintf(f, "%s,%s,%s,%s,%ld,%.0f,%.0f,%.0f,%.0f,%.0f,%lu,%s,\"%s\",%d,\"%s\"\n", place, src,
		det, used, n, p50, p90, p99, max, comp, missed, si->root ? "yes" : "no",
		si->cpu_model, si->ncpu, si->kernel);
}

struct opts {
	long n;          /* samples per cell, both sources together */
	int rounds;
	double cell_secs; /* time budget of a cell over all rounds */
	long sleep_n;
	int quiet_ms;
	int quick;
	char only[256], csv[4096], bars[4096];
};

static void parse_opts(int argc, char **argv, struct opts *o)
{
	*o = (struct opts){.n = 2000, .rounds = 3, .cell_secs = 3.0, .sleep_n = 80,
			   .quiet_ms = 20};
	int n_set = 0, s_set = 0;
	static const struct option lo[] = {{"n", required_argument, 0, 'n'},
					   {"rounds", required_argument, 0, 'r'},
					   {"cell-secs", required_argument, 0, 't'},
					   {"sleep-n", required_argument, 0, 'S'},
					   {"quiet-ms", required_argument, 0, 'Q'},
					   {"csv", required_argument, 0, 'v'},
					   {"bars", required_argument, 0, 'b'},
					   {"quick", no_argument, 0, 'q'},
					   {"only", required_argument, 0, 'o'},
					   {"help", no_argument, 0, 'h'},
					   {0, 0, 0, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'n': o->n = strtol(optarg, NULL, 10); n_set = 1; break;
		case 'r': o->rounds = atoi(optarg); break;
		case 't': o->cell_secs = atof(optarg); break;
		case 'S': o->sleep_n = strtol(optarg, NULL, 10); s_set = 1; break;
		case 'Q': o->quiet_ms = atoi(optarg); break;
		case 'q': o->quick = 1; break;
		case 'o': snprintf(o->only, sizeof o->only, ",%s,", optarg); break;
		case 'v': snprintf(o->csv, sizeof o->csv, "%s", optarg); break;
		case 'b': snprintf(o->bars, sizeof o->bars, "%s", optarg); break;
		case 'h':
		default:
			printf("usage: handoff [--quick] [--n K (samples per detector and placement, "
			       "default 2000; --quick 300)]\n"
			       "       [--rounds R (default 3; --quick 1)] [--cell-secs S (time budget "
			       "per detector and placement, default 3; --quick 0.6)]\n"
			       "       [--sleep-n K (nanosleep samples per detector, default 80; "
			       "--quick 15)] [--quiet-ms MS (default 20)]\n"
			       "       [--only auto,idle,probe,upcall,watchdog,eager] [--csv PATH "
			       "(default OUTDIR/handoff.csv)] [--bars PATH]\n");
			exit(c == 'h' ? 0 : 2);
		}
	}
	if (o->quick) {
		if (!n_set)
			o->n = 300;
		if (!s_set)
			o->sleep_n = 15;
		o->rounds = 1;
		o->cell_secs = 0.6;
	}
	if (o->n < 2 || o->n > 10000000 || o->rounds < 1 || o->rounds > 100 ||
	    o->cell_secs <= 0 || o->sleep_n < 1 || o->sleep_n > 100000 || o->quiet_ms < 1)
		mb_fail("handoff: an option is out of range (see --help)");
}

static int selected(const struct opts *o, const struct det *d)
{
	char key[40];
	snprintf(key, sizeof key, ",%s,", d->name);
	return !o->only[0] || strstr(o->only, key);
}

static void alloc_series(struct series *s, long cap)
{
	s->cap = cap;
	s->lat = calloc((size_t)cap, sizeof(double));
	s->comp = calloc((size_t)cap, sizeof(double));
	if (!s->lat || !s->comp)
		mb_die("calloc");
}

/* The notice bars for the default detector: what a program gets without choosing. */
static void notice_bars(const struct opts *o, const struct mb_sysinfo *si,
			struct cell cells[NPLACE][NDET])
{
	const struct cell *busy = &cells[PL_BUSY][0], *unp = &cells[PL_UNPINNED][0],
			  *pin = &cells[PL_PINNED][0];
	char fig[160], v[64], a[32], b[32];
	if (busy->ran) {
		for (int src = 0; src < NSRC; src++) {
			const struct series *s = &busy->s[src];
			if (!s->n) {
				snprintf(fig, sizeof fig, "handoff: busy, auto, data from %s: p99",
					 src_name[src]);
				mb_bar(o->bars, si, fig, "no sample in the budget", "<= 2 ms", 0);
				continue;
			}
			double p99 = pct(s, s->lat, 99), p50 = pct(s, s->lat, 50);
			snprintf(fig, sizeof fig, "handoff: busy, auto, data from %s: p99", src_name[src]);
			mb_bar(o->bars, si, fig, mb_fmt_ns(p99, v, sizeof v), "<= 2 ms", p99 <= 2e6);
			snprintf(fig, sizeof fig, "handoff: busy, auto, data from %s: median (goal)",
				 src_name[src]);
			mb_bar(o->bars, si, fig, mb_fmt_ns(p50, v, sizeof v), "<= 100 us", p50 <= 1e5);
		}
		unsigned long missed = busy->s[SRC_SAME].missed + busy->s[SRC_PROC].missed;
		snprintf(v, sizeof v, "%lu", missed);
		mb_bar(o->bars, si, "handoff: busy, auto: blocks left unnoticed", v, "0", missed == 0);
	}
	const struct series *s = &unp->s[SRC_PROC];
	if (unp->ran && s->n) {
		double p50 = pct(s, s->lat, 50), p99 = pct(s, s->lat, 99);
		mb_bar(o->bars, si, "handoff: unpinned, auto, data from other process: median",
		       mb_fmt_ns(p50, v, sizeof v), "<= 10 us (goal 5)", p50 <= 1e4);
		mb_bar(o->bars, si, "handoff: unpinned, auto, data from other process: p99",
		       mb_fmt_ns(p99, v, sizeof v), "<= 30 us", p99 <= 3e4);
	}
	s = &pin->s[SRC_PROC];
	if (pin->ran && s->n) {
		double p50 = pct(s, s->lat, 50);
		snprintf(v, sizeof v, "%s (p99 %s)", mb_fmt_ns(p50, a, sizeof a),
			 mb_fmt_ns(pct(s, s->lat, 99), b, sizeof b));
		mb_bar(o->bars, si, "handoff: pinned, auto, data from other process: median", v,
		       "<= 8.5 us (before)", p50 <= 8500);
	}
}

static void quiet_bars(const struct opts *o, const struct mb_sysinfo *si, const struct quiet *q)
{
	if (!q->ran || !q->got)
		return;
	char v[64], a[32], b[32];
	double p50 = mb_pct_sorted(q->lat, (size_t)q->got, 50);
	snprintf(v, sizeof v, "%s (p99 %s)", mb_fmt_ns(p50, a, sizeof a),
		 mb_fmt_ns(mb_pct_sorted(q->lat, (size_t)q->got, 99), b, sizeof b));
	mb_bar(o->bars, si, "handoff: 2 ms nanosleep after a quiet spell, auto: median", v,
	       "<= 10 us", p50 <= 1e4 && q->sync == 0);
	double share = q->quiet_ns > 0 ? 100.0 * q->cpu_ns / q->quiet_ns : 0;
	snprintf(v, sizeof v, "%.2f%% of a CPU", share);
	mb_bar(o->bars, si, "handoff: quiet process CPU (auto, during the quiet spells)", v,
	       "~0 (<= 1%)", share <= 1.0);
}

int main(int argc, char **argv)
{
	struct opts o;
	parse_opts(argc, argv, &o);
	make_edges();
	struct mb_sysinfo si;
	mb_output_init();
	mb_sysinfo_get(&si);
	/* The writer first (fork copies only the caller), the watchdog before any pinning. */
	mb_writer_start(&writer, -1);
	mb_watch_start(&watch, 1000, 60000);

	printf("handoff: time from just before laio_syscall(SYS_read) on an empty pipe to the caller "
	       "holding EINPROGRESS\n");
	mb_sysinfo_print(stdout, &si);
	for (int pl = 0; pl < NPLACE; pl++)
		printf("# placement %-9s  %s\n", place_name[pl], place_what[pl]);
	printf("# samples:              %ld per detector and placement (half with the data from the "
	       "same thread, half from another process, alternating), %d round(s), each in a "
	       "fresh thread after %d warm-up calls; at most %.1f s per detector and placement\n",
	       o.n, o.rounds, WARM, o.cell_secs);
	printf("# note: probe/eager hand the call off before it blocks; the others let it block, "
	       "and the time includes noticing the block\n");

	static struct cell cells[NPLACE][NDET];
	for (int pl = 0; pl < NPLACE; pl++)
		for (int d = 0; d < NDET; d++) {
			cells[pl][d] = (struct cell){.det = &dets[d], .place = pl};
			for (int src = 0; src < NSRC; src++)
				alloc_series(&cells[pl][d].s[src], o.n / 2 + 1);
		}
	char labels[NPLACE][NDET][48];
	long quota = (o.n + o.rounds - 1) / o.rounds;
	uint64_t cell_ns = (uint64_t)(o.cell_secs / o.rounds * 1e9);
	uint64_t t_all = mb_now_ns();
	for (int r = 0; r < o.rounds; r++)
		for (int pl = 0; pl < NPLACE; pl++) {
			enter_place(pl, si.ncpu);
			for (int d = 0; d < NDET; d++) {
				struct cell *c = &cells[pl][d];
				if (!selected(&o, &dets[d]) || c->stopped)
					continue;
				snprintf(labels[pl][d], sizeof labels[pl][d], "handoff %s %s",
					 place_name[pl], dets[d].name);
				atomic_store(&watch.label, (const char *)labels[pl][d]);
				mb_progress("handoff: round %d/%d, %s, detector %s ...", r + 1,
					    o.rounds, place_name[pl], dets[d].name);
				struct cell_run run = {c, quota, cell_ns};
				run_thread(cell_main, &run);
			}
			leave_place(pl);
		}
	mb_pin_self(-1);
	mb_writer_pin(&writer, -1);

	static struct quiet quiets[NDET];
	for (int d = 0; d < NDET; d++) {
		if (!selected(&o, &dets[d]))
			continue;
		struct quiet *q = &quiets[d];
		*q = (struct quiet){.det = &dets[d], .n = o.sleep_n, .quiet_ms = o.quiet_ms};
		if (!(q->lat = calloc((size_t)o.sleep_n, sizeof(double))))
			mb_die("calloc");
		atomic_store(&watch.label, (const char *)"handoff nanosleep after a quiet spell");
		mb_progress("handoff: nanosleep after a quiet spell, detector %s ...", dets[d].name);
		run_thread(quiet_main, q);
	}
	double wall = (double)(mb_now_ns() - t_all) / 1e9;
	mb_progress_clear();

	printf("\n== notice: laio_syscall(SYS_read) entry -> EINPROGRESS; completion: the data "
	       "written -> laio_poll returns ==\n");
	printf("%-9s %-9s %-9s %-13s %7s %10s %10s %10s %10s %11s  %s\n", "placement", "detector",
	       "used", "data from", "samples", "median", "p90", "p99", "max", "completion",
	       "missed blocks");
	int status = 0;
	for (int pl = 0; pl < NPLACE; pl++)
		for (int d = 0; d < NDET; d++) {
			struct cell *c = &cells[pl][d];
			if (!selected(&o, &dets[d]))
				continue;
			if (!c->ran) {
				printf("%-9s %-9s skipped: %s\n", place_name[pl], dets[d].name, c->skip);
				continue;
			}
			for (int src = 0; src < NSRC; src++) {
				struct series *s = &c->s[src];
				mb_sort(s->lat, (size_t)s->n);
				mb_sort(s->comp, (size_t)s->n);
				print_row(c, src);
				if (s->missed)
					status = 4;
			}
		}
	for (int pl = 0; pl < NPLACE; pl++) {
		const struct series *s = &cells[pl][0].s[SRC_PROC];
		if (!s->n)
			continue;
		printf("\nhistogram: %s, auto, data from another process (%ld samples):\n",
		       place_name[pl], s->n);
		histogram(s->lat, s->n);
	}

	printf("\n== a 2 ms nanosleep after %d ms without a call (unpinned): entry -> EINPROGRESS ==\n",
	       o.quiet_ms);
	printf("%-9s %-9s %7s %10s %10s %10s  %-12s %s\n", "detector", "used", "samples", "median",
	       "p99", "max", "synchronous", "process CPU while quiet");
	for (int d = 0; d < NDET; d++) {
		struct quiet *q = &quiets[d];
		if (!q->det)
			continue;
		if (!q->ran) {
			printf("%-9s skipped: %s\n", dets[d].name, q->skip);
			continue;
		}
		mb_sort(q->lat, (size_t)q->got);
		char a[32] = "-", b[32] = "-", c3[32] = "-";
		if (q->got) {
			mb_fmt_ns(mb_pct_sorted(q->lat, (size_t)q->got, 50), a, sizeof a);
			mb_fmt_ns(mb_pct_sorted(q->lat, (size_t)q->got, 99), b, sizeof b);
			mb_fmt_ns(q->lat[q->got - 1], c3, sizeof c3);
		}
		printf("%-9s %-9s %7ld %10s %10s %10s  %-12lu %.2f%% of a CPU\n", dets[d].name, q->used,
		       q->got, a, b, c3, q->sync,
		       q->quiet_ns > 0 ? 100.0 * q->cpu_ns / q->quiet_ns : 0.0);
	}
	printf("\nwall time: %.1f s\n", wall);

	if (!o.csv[0]) {
		char dir[3500];
		mb_default_outdir(dir, sizeof dir);
		snprintf(o.csv, sizeof o.csv, "%s/handoff.csv", dir);
	}
	FILE *cf = fopen(o.csv, "w");
	if (!cf)
		mb_die("fopen %s", o.csv);
	fprintf(cf, "placement,source,detector,used,samples,median_ns,p90_ns,p99_ns,max_ns,"
		    "completion_p50_ns,missed,root,cpu_model,ncpu,kernel\n");
	for (int pl = 0; pl < NPLACE; pl++)
		for (int d = 0; d < NDET; d++)
			for (int src = 0; src < NSRC; src++) {
				const struct series *s = &cells[pl][d].s[src];
				if (cells[pl][d].ran && s->n)
					csv_row(cf, place_name[pl], src_key[src], dets[d].name,
						cells[pl][d].used, s->n, pct(s, s->lat, 50),
						pct(s, s->lat, 90), pct(s, s->lat, 99),
						s->lat[s->n - 1], pct(s, s->comp, 50), s->missed, &si);
			}
	for (int d = 0; d < NDET; d++) {
		const struct quiet *q = &quiets[d];
		if (q->ran && q->got)
			csv_row(cf, "unpinned", "nanosleep-after-quiet", dets[d].name, q->used, q->got,
				mb_pct_sorted(q->lat, (size_t)q->got, 50),
				mb_pct_sorted(q->lat, (size_t)q->got, 90),
				mb_pct_sorted(q->lat, (size_t)q->got, 99), q->lat[q->got - 1], 0,
				q->sync, &si);
	}
	if (fclose(cf) == EOF)
		mb_die("fclose %s", o.csv);
	printf("CSV: %s\n", o.csv);

	printf("\n== the bars (default detector)%s ==\n", o.quick ? " (--quick: fewer samples)" : "");
	notice_bars(&o, &si, cells);
	quiet_bars(&o, &si, &quiets[0]);
	mb_writer_stop(&writer);
	return status;
}
