/*
 * handoff.c - hand-off latency of each LAIO block detector, as a histogram.
 *
 * For each detector, in a fresh thread configured with laio_init(): K times,
 *     t0 = now; r = laio_syscall(SYS_read, empty_pipe, &c, 1); t1 = now;   (r == -1, EINPROGRESS)
 *     write one byte into the pipe; laio_poll() until the completion arrives; t2 = now.
 * The hand-off latency is t1 - t0: from just before the call to the caller holding EINPROGRESS.
 * For the probe and eager detectors the call is handed off before it blocks (try, EAGAIN, move);
 * for upcall and watchdog it blocks first, and the time includes detecting the block.
 * The completion latency t2 - t1' (from the write to laio_poll returning) is reported alongside.
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

struct det {
	const char *name;
	enum laio_detector d;
};
static const struct det dets[] = {
	{"idle", LAIO_DETECT_IDLE},
	{"probe", LAIO_DETECT_PROBE},
	{"upcall", LAIO_DETECT_UPCALL},
	{"watchdog", LAIO_DETECT_WATCHDOG},
	{"eager", LAIO_DETECT_EAGER},
};
#define NDET ((int)(sizeof dets / sizeof dets[0]))

struct job {
	const struct det *det;
	long n, warm;
	/* results */
	int ran;
	char skip[256];
	char used[32];
	double *handoff;   /* n entries, ns */
	double *complete;  /* n entries, ns */
	long samples;
	unsigned long missed; /* completed synchronously: the watchdog had to release them */
	struct laio_stats st;
};

static struct mb_watch watch;
static int sleep_mode; /* --sleep: a 2 ms nanosleep (no non-blocking form) instead of the read */

static void *run(void *arg)
{
	struct job *j = arg;
	struct laio_config cfg = {.detector = j->det->d};
	if (laio_init(&cfg) == -1) {
		if (errno != ENOTSUP)
			mb_die("laio_init(%s)", j->det->name);
		snprintf(j->skip, sizeof j->skip, "laio_init: %s%s", strerror(errno),
			 j->det->d == LAIO_DETECT_UPCALL
				 ? " (the upcall detector needs perf_event_open of a context-switch "
				   "event: root, CAP_PERFMON or perf_event_paranoid <= 1)"
				 : "");
		return NULL;
	}
	snprintf(j->used, sizeof j->used, "%s", laio_detector_name(sleep_mode ? SYS_nanosleep : SYS_read));
	int p[2];
	MB_CHECK(pipe2(p, O_CLOEXEC));
	atomic_store(&watch.rescue_fd, p[1]);
	char c;
	for (long i = 0; i < j->warm + j->n; i++) {
		atomic_store_explicit(&watch.progress, (unsigned long)i, memory_order_relaxed);
		atomic_store_explicit(&watch.phase, MB_PH_SYSCALL, memory_order_relaxed);
		static const struct timespec two_ms = { 0, 2000000 };
		uint64_t t0 = mb_now_ns();
		long r = sleep_mode ? laio_syscall(SYS_nanosleep, &two_ms, NULL)
				    : laio_syscall(SYS_read, p[0], &c, 1);
		uint64_t t1 = mb_now_ns();
		int e = errno;
		atomic_store_explicit(&watch.phase, MB_PH_WAIT, memory_order_relaxed);
		if (r == (sleep_mode ? 0 : 1)) {
			j->missed++; /* the watchdog's rescue byte released a missed block */
			if (j->missed >= 3) {
				mb_note("handoff: %s: 3 missed blocks (the last at call %ld): "
					"stopping this detector", j->det->name, i);
				break;
			}
			continue;
		}
		if (r != -1 || e != EINPROGRESS)
			mb_fail("%s: laio_syscall(SYS_read) on an empty pipe returned %ld (%s)",
				j->det->name, r, strerror(e));
		void *h = laio_gethandle();
		uint64_t tw = mb_now_ns();
		if (!sleep_mode && write(p[1], "x", 1) != 1)
			mb_die("write");
		struct laio_completion comp;
		int k;
		do
			k = laio_poll(&comp, 1, NULL);
		while (k == 0 || (k == -1 && errno == EINTR));
		uint64_t t2 = mb_now_ns();
		if (k != 1)
			mb_die("laio_poll returned %d", k);
		if (comp.laio_handle != h || comp.laio_return_value != (sleep_mode ? 0 : 1))
			mb_fail("%s: completion handle %p (expected %p), return %ld, errno %d",
				j->det->name, comp.laio_handle, h, comp.laio_return_value,
				comp.laio_errno);
		if (i >= j->warm) {
			j->handoff[j->samples] = (double)(t1 - t0);
			j->complete[j->samples] = (double)(t2 - tw);
			j->samples++;
		}
	}
	atomic_store(&watch.rescue_fd, -1);
	atomic_store_explicit(&watch.phase, MB_PH_IDLE, memory_order_relaxed);
	laio_stats(&j->st);
	MB_CHECK(close(p[0]));
	MB_CHECK(close(p[1]));
	j->ran = 1;
	return NULL;
}

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

int main(int argc, char **argv)
{
	long n = 2000;
	int cpu = 0, quick = 0, n_set = 0;
	char only[256] = "", csv[4096] = "";
	static const struct option lo[] = {{"n", required_argument, 0, 'n'},
					   {"csv", required_argument, 0, 'v'},
					   {"quick", no_argument, 0, 'q'},
					   {"sleep", no_argument, 0, 's'},
					   {"cpu", required_argument, 0, 'c'},
					   {"only", required_argument, 0, 'o'},
					   {"help", no_argument, 0, 'h'},
					   {0, 0, 0, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'n':
			n = strtol(optarg, NULL, 10);
			n_set = 1;
			if (n < 1 || n > 10000000)
				mb_fail("bad --n '%s'", optarg);
			break;
		case 'q': quick = 1; break;
		case 's': sleep_mode = 1; break;
		case 'c': cpu = mb_parse_cpu(optarg); break;
		case 'o': snprintf(only, sizeof only, ",%s,", optarg); break;
		case 'v': snprintf(csv, sizeof csv, "%s", optarg); break;
		case 'h':
		default:
			printf("usage: handoff [--n K (default 2000)] [--quick (K=300)] "
			       "[--cpu C|none (default 0)] [--only idle,probe,upcall,watchdog,eager]\n"
			       "       [--csv PATH (default OUTDIR/handoff.csv)] [--sleep: a 2 ms "
			       "nanosleep instead of the read]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (quick && !n_set)
		n = 300;
	make_edges();
	struct mb_sysinfo si;
	mb_output_init();
	mb_sysinfo_get(&si);
	if (cpu >= si.ncpu)
		mb_fail("--cpu %d: only %d CPUs", cpu, si.ncpu);
	mb_watch_start(&watch, 1000, 60000);
	mb_pin_self(cpu);
	char cs[32];
	printf("handoff: time from just before laio_syscall(%s to the caller holding "
	       "EINPROGRESS\n", sleep_mode ? "SYS_nanosleep, 2 ms)" : "SYS_read) on an empty pipe");
	mb_sysinfo_print(stdout, &si);
	printf("# pinning:              caller (and the threads it creates) %s\n",
	       mb_cpu_str(cpu, cs, sizeof cs));
	printf("# samples:              %ld per detector (after 20 warm-up calls), each in a fresh "
	       "thread\n", n);
	printf("# note: probe/eager hand the call off before it blocks; upcall/watchdog let it "
	       "block and the time includes detecting the block\n");

	struct job jobs[NDET];
	memset(jobs, 0, sizeof jobs);
	for (int d = 0; d < NDET; d++) {
		char key[40];
		snprintf(key, sizeof key, ",%s,", dets[d].name);
		if (only[0] && !strstr(only, key))
			continue;
		struct job *j = &jobs[d];
		j->det = &dets[d];
		j->n = n;
		j->warm = 20;
		j->handoff = calloc((size_t)n, sizeof(double));
		j->complete = calloc((size_t)n, sizeof(double));
		if (!j->handoff || !j->complete)
			mb_die("calloc");
		char label[64];
		snprintf(label, sizeof label, "handoff %s", dets[d].name);
		atomic_store(&watch.label, (const char *)strdup(label));
		mb_progress("handoff: detector %s, %ld calls ...", dets[d].name, n);
		uint64_t t0 = mb_now_ns();
		pthread_t t;
		int e = pthread_create(&t, NULL, run, j);
		if (!e)
			e = pthread_join(t, NULL);
		if (e) {
			errno = e;
			mb_die("pthread_create/join");
		}
		double secs = (double)(mb_now_ns() - t0) / 1e9;

		mb_progress_clear();
		printf("\n== detector %s ==\n", dets[d].name);
		if (!j->ran) {
			printf("skipped: %s\n", j->skip);
			continue;
		}
		mb_sort(j->handoff, (size_t)j->samples);
		mb_sort(j->complete, (size_t)j->samples);
		char a[32], b[32], c3[32], d4[32], e5[32], f6[32];
		printf("detector used: %s; samples %ld; missed blocks (released by the watchdog "
		       "after 1 s) %lu; %.2f s\n", j->used, j->samples, j->missed, secs);
		printf("laio_stats: calls %lu, blocked %lu (%.1f%%), upcalls %lu, completed %lu\n",
		       j->st.calls, j->st.blocked,
		       j->st.calls ? 100.0 * (double)j->st.blocked / (double)j->st.calls : 0.0,
		       j->st.upcalls, j->st.completed);
		if (!j->samples)
			continue;
		size_t s = (size_t)j->samples;
		printf("hand-off:   min %s  median %s  p90 %s  p99 %s  max %s\n",
		       mb_fmt_ns(j->handoff[0], a, sizeof a),
		       mb_fmt_ns(mb_pct_sorted(j->handoff, s, 50), b, sizeof b),
		       mb_fmt_ns(mb_pct_sorted(j->handoff, s, 90), c3, sizeof c3),
		       mb_fmt_ns(mb_pct_sorted(j->handoff, s, 99), d4, sizeof d4),
		       mb_fmt_ns(j->handoff[s - 1], e5, sizeof e5));
		printf("completion (write -> laio_poll returns): median %s  p90 %s  p99 %s\n",
		       mb_fmt_ns(mb_pct_sorted(j->complete, s, 50), a, sizeof a),
		       mb_fmt_ns(mb_pct_sorted(j->complete, s, 90), b, sizeof b),
		       mb_fmt_ns(mb_pct_sorted(j->complete, s, 99), f6, sizeof f6));
		printf("hand-off histogram:\n");
		histogram(j->handoff, j->samples);
	}

	int status = 0; /* 4: some detector missed blocks */
	if (!csv[0]) {
		char dir[3500];
		mb_default_outdir(dir, sizeof dir);
		snprintf(csv, sizeof csv, "%s/handoff.csv", dir);
	}
	FILE *cf = fopen(csv, "w");
	if (cf)
		fprintf(cf, "detector,used,samples,median_ns,p90_ns,p99_ns,completion_p50_ns,missed,"
			    "root,cpu_model,ncpu,kernel\n");
	printf("\n== summary: hand-off latency (laio_syscall entry -> EINPROGRESS) ==\n");
	printf("%-10s %-10s %7s %10s %10s %10s %14s  %s\n", "detector", "used", "samples", "median",
	       "p90", "p99", "completion p50", "missed blocks");
	for (int d = 0; d < NDET; d++) {
		struct job *j = &jobs[d];
		if (!j->det)
			continue;
		if (!j->ran) {
			printf("%-10s skipped: %s\n", dets[d].name, j->skip);
			continue;
		}
		size_t s = (size_t)j->samples;
		char a[32] = "-", b[32] = "-", c3[32] = "-", d4[32] = "-";
		if (s) {
			mb_fmt_ns(mb_pct_sorted(j->handoff, s, 50), a, sizeof a);
			mb_fmt_ns(mb_pct_sorted(j->handoff, s, 90), b, sizeof b);
			mb_fmt_ns(mb_pct_sorted(j->handoff, s, 99), c3, sizeof c3);
			mb_fmt_ns(mb_pct_sorted(j->complete, s, 50), d4, sizeof d4);
		}
		if (j->missed)
			status = 4;
		if (cf && s)
			fprintf(cf, "%s,%s,%ld,%.0f,%.0f,%.0f,%.0f,%lu,%s,\"%s\",%d,\"%s\"\n",
				dets[d].name, j->used, j->samples, mb_pct_sorted(j->handoff, s, 50),
				mb_pct_sorted(j->handoff, s, 90), mb_pct_sorted(j->handoff, s, 99),
				mb_pct_sorted(j->complete, s, 50), j->missed, si.root ? "yes" : "no",
				si.cpu_model, si.ncpu, si.kernel);
		printf("%-10s %-10s %7ld %10s %10s %10s %14s  %lu%s\n", dets[d].name, j->used,
		       j->samples, a, b, c3, d4, j->missed,
		       j->missed >= 3 ? " (stopped early: the detector misses blocks)" : "");
	}
	if (cf) {
		fclose(cf);
		printf("CSV: %s\n", csv);
	}
	return status;
}
