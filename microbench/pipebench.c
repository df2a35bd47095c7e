/*
 * pipebench.c - the LAIO paper's pipe microbenchmark (Elmeleegy et al., USENIX ATC 2004, sec. 7):
 * read one byte through a pipe N times, with the pipe FULL (no read blocks) and EMPTY (every read
 * blocks until a writer process writes), comparing raw read(), non-blocking I/O with epoll, POSIX
 * AIO, io_uring, a helper-thread pool and LAIO with each block detector.
 *
 * Runs are interleaved (A B C ... A B C ...) over several rounds; each variant is reported as the
 * median over rounds of the round's time per read, with the min-max and p10-p90 of those values.
 * See README.md for the protocol and how to read the table.
 */
#define _GNU_SOURCE
#include "pb_driver.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PIPEBENCH_NO_LAIO
#include "laio.h"
#endif

#define RESCUE_MS 1000     /* a read blocked this long without EINPROGRESS: a missed block */
#define PB_MAX_DISCARDED 3 /* discarded rounds, and none good: the variant is given up */

const struct variant pb_variants[] = {
	{"raw-read", V_RAW, 0, "blocking read(2): the floor"},
	{"nb-epoll", V_NB, 0, "O_NONBLOCK read(2); epoll_wait(2) when it returns EAGAIN"},
	{"posix-aio", V_AIO, 0, "glibc aio_read + aio_suspend + aio_error/aio_return"},
	{"io_uring", V_URING, 0, "liburing IORING_OP_READ, submit + wait_cqe"},
	{"pool", V_POOL, 0, "helper pthreads take requests from a queue (AMTED)"},
#ifndef PIPEBENCH_NO_LAIO
	{"laio-idle", V_LAIO, LAIO_DETECT_IDLE, "laio_syscall, idle detector (SCHED_IDLE standby)"},
	{"laio-auto", V_LAIO, LAIO_DETECT_AUTO, "laio_syscall, the default detector"},
	{"laio-probe", V_LAIO, LAIO_DETECT_PROBE, "laio_syscall, probe detector"},
	{"laio-upcall", V_LAIO, LAIO_DETECT_UPCALL, "laio_syscall, upcall detector"},
	{"laio-watchdog", V_LAIO, LAIO_DETECT_WATCHDOG, "laio_syscall, watchdog detector"},
	{"laio-eager", V_LAIO, LAIO_DETECT_EAGER, "laio_syscall, eager detector"},
#endif
};
#define NVAR ((int)(sizeof pb_variants / sizeof pb_variants[0]))
_Static_assert(NVAR <= PB_MAX_VARIANTS, "raise PB_MAX_VARIANTS");
const int pb_nvar = NVAR;

struct agg pb_aggs[2][PB_MAX_VARIANTS];
static struct mb_watch watch;
static struct mb_writer writer;

const char *pb_mode_name(int m)
{
	return m == PB_FULL ? "full" : "empty";
}

void pb_kick(const struct pb_ctx *ctx)
{
	(void)ctx;
	mb_writer_kick(&writer);
}

void pb_bad_read(const char *what, const struct pb_ctx *ctx, long i, long ret, int err)
{
	mb_fail("%s: read %ld of %ld: %s returned %ld (%s); expected one byte", ctx->label, i,
		ctx->warm + ctx->n, what, ret, err ? strerror(err) : "no error");
}

/* ---- one run -------------------------------------------------------------------------------- */

static int pipe_bytes(int fd)
{
	int n;
	MB_CHECK(ioctl(fd, FIONREAD, &n));
	return n;
}

/* A pipe enlarged to hold `bytes` and filled with them. */
static void full_pipe(long bytes, int fds[2])
{
	MB_CHECK(pipe2(fds, O_CLOEXEC));
	long want = bytes < 65536 ? 65536 : bytes;
	if (fcntl(fds[1], F_SETPIPE_SZ, (int)want) == -1)
		mb_die("fcntl(F_SETPIPE_SZ, %ld) (reduce --n-full, or raise "
		       "/proc/sys/fs/pipe-max-size)", want);
	static char chunk[65536];
	memset(chunk, 'x', sizeof chunk);
	for (long left = bytes; left > 0;) {
		size_t k = left < (long)sizeof chunk ? (size_t)left : sizeof chunk;
		ssize_t w = write(fds[1], chunk, k);
		if (w <= 0)
			mb_die("prefill write");
		left -= w;
	}
	if (pipe_bytes(fds[0]) != bytes)
		mb_fail("prefill: pipe holds %d bytes, expected %ld", pipe_bytes(fds[0]), bytes);
}

static void run_one(const struct opts *o, int mode, int v, int round, int data_rfd)
{
	const struct variant *var = &pb_variants[v];
	struct agg *a = &pb_aggs[mode][v];
	char label[96];
	snprintf(label, sizeof label, "%s %s", pb_mode_name(mode), var->name);

	struct pb_ctx ctx = {
		.mode = (enum pb_mode)mode,
		.n = mode == PB_FULL ? o->n_full : o->n_empty,
		.pool_threads = o->pool_threads,
		.watch = &watch,
		.label = label,
	};
	ctx.warm = mode == PB_FULL ? (ctx.n / 10 < 1000 ? ctx.n / 10 : 1000) : 20;
	ctx.batch = mode == PB_FULL && ctx.n >= 1000 ? 100 : 1;
	ctx.lat = malloc(sizeof(double) * (size_t)(ctx.n / ctx.batch + 1));
	if (!ctx.lat)
		mb_die("malloc");
	int fds[2] = {-1, -1};
	if (mode == PB_FULL) {
		full_pipe(ctx.warm + ctx.n, fds);
		ctx.rfd = fds[0];
	} else {
		ctx.rfd = data_rfd;
		if (pipe_bytes(data_rfd) != 0)
			mb_fail("%s: the data pipe is not empty before the run", label);
	}

	struct pb_result res;
	memset(&res, 0, sizeof res);
	atomic_store(&watch.label, (const char *)label);
	mb_watch_set(&watch, 0, MB_PH_OTHER);
	switch (var->kind) {
	case V_RAW: pb_run_raw(&ctx, &res); break;
	case V_NB: pb_run_nb(&ctx, &res); break;
	case V_AIO: pb_run_aio(&ctx, &res); break;
	case V_URING: pb_run_uring(&ctx, &res); break;
	case V_POOL: pb_run_pool(&ctx, &res); break;
	case V_LAIO:
#ifndef PIPEBENCH_NO_LAIO
		pb_run_laio(&ctx, &res, var->detector);
#endif
		break;
	}
	mb_watch_set(&watch, 0, MB_PH_IDLE);

	if (mode == PB_FULL) {
		if (res.ran && pipe_bytes(fds[0]) != 0)
			mb_fail("%s: %d bytes left in the pipe after the run", label,
				pipe_bytes(fds[0]));
		MB_CHECK(close(fds[0]));
		MB_CHECK(close(fds[1]));
	} else if (res.ran && pipe_bytes(data_rfd) != 0) {
		/* Only after a watchdog rescue raced with the writer; drain, note it. */
		char junk[64];
		int left = pipe_bytes(data_rfd);
		mb_note("%s: %d stray byte(s) in the data pipe after the run, drained", label, left);
		while (left > 0) {
			ssize_t r = read(data_rfd, junk, left < 64 ? (size_t)left : 64);
			if (r <= 0)
				mb_die("drain");
			left -= (int)r;
		}
	}

	if (!res.ran && !res.failed) {
		a->state = -1;
		snprintf(a->skip, sizeof a->skip, "%s",
			 res.skip_reason[0] ? res.skip_reason : "not run");
		mb_note("pipebench: %s %s skipped: %s", pb_mode_name(mode), var->name, a->skip);
		free(ctx.lat);
		return;
	}
	a->state = 1;
	if (res.detector[0])
		snprintf(a->detector, sizeof a->detector, "%s", res.detector);
	a->missed_warm += res.missed_warm;
	a->missed_timed += res.missed_timed;
	double per = (double)res.elapsed_ns / (double)ctx.n; /* the mean */
	if (res.failed || res.missed_timed) {
		/* A 1 s stall is inside the timed reads (or the run stopped): the round says
		 * nothing about speed. After PB_MAX_DISCARDED such rounds, stop trying. */
		a->discarded++;
		mb_note("pipebench: %s round %d/%d, %s: round discarded: %s", pb_mode_name(mode),
			round + 1, o->rounds, var->name,
			res.failed ? res.skip_reason : "a missed block in the timed reads");
		if (a->discarded >= PB_MAX_DISCARDED && a->nr == 0) {
			a->state = -2;
			snprintf(a->skip, sizeof a->skip,
				 "FAILED: %d rounds discarded, %lu blocks missed by the %s detector "
				 "(each stayed blocked in laio_syscall until the watchdog released it "
				 "after %.1f s)", a->discarded, a->missed_warm + a->missed_timed,
				 res.detector, watch.rescue_ms / 1e3);
		}
		free(ctx.lat);
		return;
	}
	if (res.nbatch == 0)
		mb_fail("%s: no timed batch recorded", label);
	mb_sort(ctx.lat, res.nbatch);
	double med = mb_pct_sorted(ctx.lat, res.nbatch, 50);
	a->per_read[a->nr] = med;
	a->per_mean[a->nr] = per;
	a->lat_p99[a->nr] = mb_pct_sorted(ctx.lat, res.nbatch, 99);
	free(ctx.lat);
	a->nr++;
	a->reads += (unsigned long)ctx.n;
	a->eagain += res.eagain;
	a->calls += res.calls;
	a->blocked += res.blocked;
	if (res.detector[0])
		snprintf(a->detector, sizeof a->detector, "%s", res.detector);

	char t[32];
	mb_progress("pipebench: pipe %s, round %d/%d, %-13s %s/read", pb_mode_name(mode), round + 1,
		    o->rounds, var->name, mb_fmt_ns(med, t, sizeof t));
}

/* ---- main ----------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pipebench [options]\n"
		"  --quick            3 rounds, N full 20000, N empty 500\n"
		"  --rounds R         rounds (default 7, max %d)\n"
		"  --n-full N         reads per run, pipe full (default 100000)\n"
		"  --n-empty N        reads per run, pipe empty (default 2000)\n"
		"  --mode M           full, empty or both (default both)\n"
		"  --only LIST        comma-separated variants to run (default all)\n"
		"  --reader-cpu C     CPU for the reader (default 0; 'none' = unpinned)\n"
		"  --writer-cpu C     CPU for the writer process (default 1; 'none' = unpinned)\n"
		"  --pool-threads K   helper threads of the pool variant (default 2)\n"
		"  --outdir DIR       where the CSV and PNG go (default <project>/build)\n"
		"  --csv PATH         CSV path (default OUTDIR/pipebench.csv)\n"
		"  --png PATH         PNG path (default OUTDIR/pipebench.png)\n"
		"  --no-png           do not run gnuplot\n"
		"  --gp PATH          gnuplot script (default <project>/microbench/pipebench.gp)\n"
		"  --summary PATH     also write the paper's ratios beside ours there\n"
		"  --bars PATH        append laio-auto's ratios beside their bars there (make bench's\n"
		"                     summary): empty pipe LAIO / POSIX AIO, and unpinned full pipe\n"
		"                     LAIO / raw read\n"
		"variants:",
		MAX_ROUNDS);
	for (int v = 0; v < NVAR; v++)
		fprintf(f, " %s", pb_variants[v].name);
	fputc('\n', f);
}

static long parse_long(const char *s, long lo, long hi, const char *what)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *s == '\0' || *end != '\0' || v < lo || v > hi)
		mb_fail("bad %s '%s' (%ld..%ld)", what, s, lo, hi);
	return v;
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
	memset(o, 0, sizeof *o);
	o->rounds = 7;
	o->n_full = 100000;
	o->n_empty = 2000;
	o->modes = 3;
	o->reader_cpu = 0;
	o->writer_cpu = 1;
	o->pool_threads = 2;
	int rounds_set = 0, nf_set = 0, ne_set = 0;
	static const struct option lo[] = {
		{"quick", no_argument, 0, 'q'},        {"rounds", required_argument, 0, 'r'},
		{"n-full", required_argument, 0, 'F'}, {"n-empty", required_argument, 0, 'E'},
		{"mode", required_argument, 0, 'm'},   {"only", required_argument, 0, 'o'},
		{"reader-cpu", required_argument, 0, 'R'},
		{"writer-cpu", required_argument, 0, 'W'},
		{"pool-threads", required_argument, 0, 'P'},
		{"outdir", required_argument, 0, 'd'}, {"csv", required_argument, 0, 'c'},
		{"png", required_argument, 0, 'p'},    {"no-png", no_argument, 0, 'n'},
		{"gp", required_argument, 0, 'g'},     {"help", no_argument, 0, 'h'},
		{"summary", required_argument, 0, 's'},
		{"bars", required_argument, 0, 'b'},
		{0, 0, 0, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'q': o->quick = 1; break;
		case 'r': o->rounds = (int)parse_long(optarg, 1, MAX_ROUNDS, "--rounds"); rounds_set = 1; break;
		case 'F': o->n_full = parse_long(optarg, 1, 10000000, "--n-full"); nf_set = 1; break;
		case 'E': o->n_empty = parse_long(optarg, 1, 10000000, "--n-empty"); ne_set = 1; break;
		case 'm':
			if (!strcmp(optarg, "full")) o->modes = 1;
			else if (!strcmp(optarg, "empty")) o->modes = 2;
			else if (!strcmp(optarg, "both")) o->modes = 3;
			else mb_fail("bad --mode '%s' (full, empty, both)", optarg);
			break;
		case 'o': snprintf(o->only, sizeof o->only, "%s", optarg); break;
		case 'R': o->reader_cpu = mb_parse_cpu(optarg); break;
		case 'W': o->writer_cpu = mb_parse_cpu(optarg); break;
		case 'P': o->pool_threads = (int)parse_long(optarg, 1, 16, "--pool-threads"); break;
		case 'd': snprintf(o->outdir, sizeof o->outdir, "%s", optarg); break;
		case 'c': snprintf(o->csv, sizeof o->csv, "%s", optarg); break;
		case 'p': snprintf(o->png, sizeof o->png, "%s", optarg); break;
		case 'n': o->no_png = 1; break;
		case 'g': snprintf(o->gp, sizeof o->gp, "%s", optarg); break;
		case 's': snprintf(o->summary, sizeof o->summary, "%s", optarg); break;
		case 'b': snprintf(o->bars, sizeof o->bars, "%s", optarg); break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind < argc) {
		usage(stderr);
		exit(2);
	}
	if (o->quick) {
		if (!rounds_set) o->rounds = 3;
		if (!nf_set) o->n_full = 20000;
		if (!ne_set) o->n_empty = 500;
	}
	char def[4096];
	mb_default_outdir(def, sizeof def);
	if (!o->outdir[0])
		snprintf(o->outdir, sizeof o->outdir, "%s", def);
	if (!o->csv[0])
		snprintf(o->csv, sizeof o->csv, "%.4000s/pipebench.csv", o->outdir);
	if (!o->png[0])
		snprintf(o->png, sizeof o->png, "%.4000s/pipebench.png", o->outdir);
	if (!o->gp[0])
		snprintf(o->gp, sizeof o->gp, "%.4000s/../microbench/pipebench.gp", def);
	if (o->only[0]) {
		char tmp[1024];
		snprintf(tmp, sizeof tmp, "%s", o->only);
		for (char *sv, *t = strtok_r(tmp, ",", &sv); t; t = strtok_r(NULL, ",", &sv))
			if (pb_find_variant(t) < 0)
				mb_fail("--only: unknown variant '%s' (see --help)", t);
	}
}

static int selected(const struct opts *o, int v)
{
	if (!o->only[0])
		return 1;
	char tmp[1024];
	snprintf(tmp, sizeof tmp, "%s", o->only);
	for (char *sv, *t = strtok_r(tmp, ",", &sv); t; t = strtok_r(NULL, ",", &sv))
		if (!strcmp(t, pb_variants[v].name))
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	parse_opts(argc, argv, &o);
	struct mb_sysinfo si;
	mb_output_init();
	mb_sysinfo_get(&si);
	if (o.reader_cpu >= si.ncpu || o.writer_cpu >= si.ncpu)
		mb_fail("CPU out of range: this machine has %d online CPUs", si.ncpu);
	signal(SIGPIPE, SIG_IGN);
	mkdir(o.outdir, 0777); /* may exist; fopen reports a real problem */

	mb_writer_start(&writer, o.writer_cpu);
	int data_rfd = writer.data_rfd, data_wfd = writer.data_wfd;
	/* Started before the reader is pinned, so the watchdog keeps every CPU. */
	mb_watch_start(&watch, RESCUE_MS, 60000);
	mb_pin_self(o.reader_cpu);

	char rc[32], wc[32];
	printf("pipebench: read 1 byte through a pipe, N times per run\n");
	mb_sysinfo_print(stdout, &si);
	printf("# pinning:              reader (and the threads it creates: AIO helpers, pool "
	       "workers, LAIO threads) %s; writer process %s\n",
	       mb_cpu_str(o.reader_cpu, rc, sizeof rc), mb_cpu_str(o.writer_cpu, wc, sizeof wc));
	printf("# rounds:               %d%s, interleaved (every variant once per round, in table "
	       "order)\n", o.rounds, o.quick ? " (--quick)" : "");
#ifdef PIPEBENCH_NO_LAIO
	printf("# LAIO:                 not built (PIPEBENCH_NO_LAIO)\n");
#endif
	fflush(stdout);

	uint64_t t_start = mb_now_ns();
	for (int mode = 0; mode < 2; mode++) {
		if (!(o.modes & (1 << mode)))
			continue;
		atomic_store(&watch.rescue_fd, mode == PB_EMPTY ? data_wfd : -1);
		for (int r = 0; r < o.rounds; r++)
			for (int v = 0; v < NVAR; v++)
				if (selected(&o, v) && pb_aggs[mode][v].state >= 0)
					run_one(&o, mode, v, r, data_rfd);
		for (int v = 0; v < NVAR; v++)
			pb_summarize(&pb_aggs[mode][v]);
	}
	atomic_store(&watch.rescue_fd, -1);
	double wall = (double)(mb_now_ns() - t_start) / 1e9;

	mb_progress_clear();
	for (int mode = 0; mode < 2; mode++)
		if (o.modes & (1 << mode))
			pb_print_table(&o, mode);
	unsigned long resc = atomic_load(&watch.rescued);
	if (resc)
		printf("\nWARNING: the watchdog released %lu read(s) that blocked without being "
		       "handed off (see stderr); the rounds they were in were discarded\n", resc);
	printf("\nwall time: %.1f s\n", wall);
	pb_write_csv(&o, &si);
	pb_make_png(&o, &si);
	pb_write_bars(&o, &si); /* before the paper's ratios, which end the output */
	pb_print_comparison(stdout, &si);
	pb_write_summary(&o, &si);

	mb_writer_stop(&writer);
	return resc ? 4 : 0; /* a detector missed a block: the numbers are suspect */
}
