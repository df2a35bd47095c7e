/*
 * scale.c - many LAIO background calls in flight at once.
 *
 * Each configuration (kind x detector) runs in a forked child process, in a fresh thread that
 * calls laio_init() with max_inflight = 20000, so memory and thread counts start clean:
 *   sleep: N x laio_syscall(SYS_nanosleep, 1-2 s), all issued back to back, then drained;
 *   pipe:  N x laio_syscall(SYS_read) on N empty pipes (RLIMIT_NOFILE raised to 2N + 256), then
 *          one byte written into every pipe, then drained.
 * Reported: time to issue all, time to drain all with laio_poll, VmRSS and Threads from
 * /proc/self/status before laio_init, after it, with everything in flight, and after the drain,
 * and the memory per background call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "laio.h"
#include "mb_common.h"

struct det {
	const char *name;
	enum laio_detector d;
};
static const struct det dets[] = {
	{"auto", LAIO_DETECT_AUTO},         {"probe", LAIO_DETECT_PROBE},
	{"upcall", LAIO_DETECT_UPCALL},     {"watchdog", LAIO_DETECT_WATCHDOG},
	{"eager", LAIO_DETECT_EAGER},
};
#define NDET ((int)(sizeof dets / sizeof dets[0]))
static const char *kinds[2] = {"sleep", "pipe"};

/* What a child sends back to the parent for the summary. */
struct result {
	int ran;
	char skip[200];
	char used[32];
	long n, npipes, issued, inflight, sync, missed;
	char *bg; /* in the child only: bg[i] = call i went to the background */
	double issue_s, drain_s, late_ms;
	long rss[4], thr[4], fds[4], hwm; /* 0 before init, 1 after init, 2 end of issue, 3 drained */
	unsigned long peak_in_flight, sync_at_limit;
};

struct job {
	int kind; /* 0 sleep, 1 pipe */
	const struct det *det;
	long n;
	struct result *r;
};

static struct mb_watch watch;
static int status_fd = -1, fddir_fd = -1; /* opened before the pipes: sampling needs no new fd */

static long status_field(const char *name)
{
	static char buf[8192];
	ssize_t k = pread(status_fd, buf, sizeof buf - 1, 0);
	if (k <= 0)
		mb_die("pread /proc/self/status");
	buf[k] = '\0';
	size_t nl = strlen(name);
	for (char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
		if (!strncmp(line, name, nl) && line[nl] == ':')
			return strtol(line + nl + 1, NULL, 10);
	return -1;
}

static long count_fds(void)
{
	char buf[32768];
	long n = 0;
	if (lseek(fddir_fd, 0, SEEK_SET) == -1)
		mb_die("lseek /proc/self/fd");
	for (;;) {
		long k = syscall(SYS_getdents64, fddir_fd, buf, sizeof buf);
		if (k == -1)
			mb_die("getdents64 /proc/self/fd");
		if (k == 0)
			break;
		for (long off = 0; off < k;) {
			unsigned short reclen = *(unsigned short *)(buf + off + 16);
			const char *name = buf + off + 19;
			if (name[0] != '.')
				n++;
			off += reclen;
		}
	}
	return n;
}

static void sample(struct result *r, int at)
{
	r->rss[at] = status_field("VmRSS");
	r->thr[at] = status_field("Threads");
	r->fds[at] = count_fds();
}

static void *run(void *arg)
{
	struct job *j = arg;
	struct result *r = j->r;
	long n = j->n;
	int (*fds)[2] = NULL;
	struct timespec *req = NULL;
	char *buf = calloc((size_t)n, 1);
	struct laio_completion *comp = calloc(512, sizeof *comp);
	if (!buf || !comp)
		mb_die("calloc");
	long np = r->npipes;
	if (j->kind == 1) {
		fds = calloc((size_t)np, sizeof *fds);
		if (!fds)
			mb_die("calloc");
		for (long i = 0; i < np; i++)
			MB_CHECK(pipe2(fds[i], O_CLOEXEC));
	} else {
		req = calloc((size_t)n, sizeof *req);
		if (!req)
			mb_die("calloc");
		unsigned long long x = 88172645463325252ull; /* xorshift: same durations every run */
		for (long i = 0; i < n; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			req[i].tv_sec = 1;
			req[i].tv_nsec = (long)(x % 1000000000ull);
		}
	}
	sample(r, 0);
	struct laio_config cfg = {.detector = j->det->d, .max_inflight = 20000};
	if (laio_init(&cfg) == -1) {
		if (errno != ENOTSUP)
			mb_die("laio_init(%s, max_inflight 20000)", j->det->name);
		snprintf(r->skip, sizeof r->skip, "laio_init: %s", strerror(errno));
		return NULL;
	}
	long nr = j->kind == 1 ? SYS_read : SYS_nanosleep;
	snprintf(r->used, sizeof r->used, "%s", laio_detector_name(nr));
	sample(r, 1);

	/* Issue. */
	atomic_store_explicit(&watch.phase, MB_PH_SYSCALL, memory_order_relaxed);
	uint64_t t0 = mb_now_ns();
	uint64_t due = 0; /* when the last sleep is due */
	for (long i = 0; i < n; i++) {
		atomic_store_explicit(&watch.progress, (unsigned long)i, memory_order_relaxed);
		long ret;
		if (j->kind == 1) {
			atomic_store(&watch.rescue_fd, fds[i % np][1]);
			ret = laio_syscall(SYS_read, fds[i % np][0], &buf[i], 1);
		} else {
			uint64_t now = mb_now_ns();
			uint64_t d = now + (uint64_t)req[i].tv_sec * 1000000000ull +
				     (uint64_t)req[i].tv_nsec;
			if (d > due)
				due = d;
			ret = laio_syscall(SYS_nanosleep, &req[i], NULL);
		}
		r->issued = i + 1;
		if (ret == -1 && errno == EINPROGRESS) {
			r->inflight++;
			r->bg[i] = 1;
		} else if ((j->kind == 1 && ret == 1) || (j->kind == 0 && ret == 0)) {
			r->sync++;
			if (j->kind == 1)
				r->missed++; /* only a watchdog rescue releases an empty pipe */
			if (j->kind == 1 && r->missed >= 3) {
				mb_note("scale: %s/%s: 3 reads blocked without being handed off; "
					"stopping the issue at %ld calls", kinds[j->kind], j->det->name,
					i + 1);
				break;
			}
			if (j->kind == 0 && r->sync >= 3) {
				mb_note("scale: %s/%s: 3 sleeps ran synchronously; stopping the "
					"issue at %ld calls", kinds[j->kind], j->det->name, i + 1);
				break;
			}
		} else {
			mb_die("scale: %s/%s: call %ld returned %ld", kinds[j->kind], j->det->name, i,
			       ret);
		}
	}
	atomic_store(&watch.rescue_fd, -1);
	uint64_t t1 = mb_now_ns();
	r->issue_s = (double)(t1 - t0) / 1e9;
	sample(r, 2);
	struct laio_stats st;
	laio_stats(&st);

	/* Release the pipe reads: one byte per read in flight on each pipe (reads that completed
	 * synchronously were released by the watchdog already). */
	if (j->kind == 1) {
		long *cnt = calloc((size_t)np, sizeof *cnt);
		char *ones = malloc((size_t)(n / np + 1));
		if (!cnt || !ones)
			mb_die("calloc");
		memset(ones, 'x', (size_t)(n / np + 1));
		for (long i = 0; i < r->issued; i++)
			if (r->bg[i])
				cnt[i % np]++;
		for (long p = 0; p < np; p++)
			if (cnt[p] && write(fds[p][1], ones, (size_t)cnt[p]) != cnt[p])
				mb_die("write pipe %ld", p);
		free(cnt);
		free(ones);
	}

	/* Drain. */
	atomic_store_explicit(&watch.phase, MB_PH_WAIT, memory_order_relaxed);
	long got = 0;
	while (got < r->inflight) {
		atomic_store_explicit(&watch.progress, (unsigned long)(n + got), memory_order_relaxed);
		int k = laio_poll(comp, 512, NULL);
		if (k == -1) {
			if (errno == EINTR)
				continue;
			mb_die("laio_poll");
		}
		for (int c = 0; c < k; c++) {
			long want = j->kind == 1 ? 1 : 0;
			if (comp[c].laio_return_value != want)
				mb_fail("scale: %s/%s: a completion returned %ld (errno %d)",
					kinds[j->kind], j->det->name, comp[c].laio_return_value,
					comp[c].laio_errno);
		}
		got += k;
	}
	uint64_t t2 = mb_now_ns();
	r->drain_s = (double)(t2 - t1) / 1e9;
	if (j->kind == 0)
		r->late_ms = ((double)t2 - (double)due) / 1e6;
	atomic_store_explicit(&watch.phase, MB_PH_IDLE, memory_order_relaxed);
	sample(r, 3);
	r->hwm = status_field("VmHWM");
	r->peak_in_flight = st.peak_in_flight;
	laio_stats(&st);
	if (st.peak_in_flight > r->peak_in_flight)
		r->peak_in_flight = st.peak_in_flight;
	r->sync_at_limit = st.sync_at_limit;
	r->ran = 1;
	return NULL;
}

/* Room for N pipes: raise RLIMIT_NOFILE to 2N + 256 if allowed; if the hard limit is lower
 * and may not be raised (no CAP_SYS_RESOURCE), use as many pipes as it allows and put several
 * reads on each pipe. Returns the number of pipes. */
static long raise_nofile(long n)
{
	long need = 2 * n + 256;
	struct rlimit rl;
	MB_CHECK(getrlimit(RLIMIT_NOFILE, &rl));
	if (rl.rlim_cur >= (rlim_t)need)
		return n;
	struct rlimit want = rl;
	want.rlim_cur = (rlim_t)need;
	if (want.rlim_max < (rlim_t)need)
		want.rlim_max = (rlim_t)need;
	if (setrlimit(RLIMIT_NOFILE, &want) == 0)
		return n;
	/* No permission to raise the hard limit (root too, in a container without
	 * CAP_SYS_RESOURCE): the result line says how many pipes the reads share. */
	rl.rlim_cur = rl.rlim_max;
	MB_CHECK(setrlimit(RLIMIT_NOFILE, &rl));
	/* Leave N + 256 descriptors to the library: a detector may hold one per kernel thread. */
	long np = ((long)rl.rlim_max - 256 - n) / 2;
	if (np < 1)
		mb_fail("RLIMIT_NOFILE hard limit %llu is too low", (unsigned long long)rl.rlim_max);
	return np < n ? np : n;
}

static void child(int kind, const struct det *det, long n, int cpu, int out)
{
	struct result r;
	memset(&r, 0, sizeof r);
	r.n = n;
	status_fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	MB_CHECK(status_fd);
	fddir_fd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	MB_CHECK(fddir_fd);
	r.npipes = kind == 1 ? raise_nofile(n) : 0;
	r.bg = calloc((size_t)n, 1);
	if (!r.bg)
		mb_die("calloc");
	{
		char label[64];
		snprintf(label, sizeof label, "scale %s/%s", kinds[kind], det->name);
		mb_watch_start(&watch, 1000, 120000);
		atomic_store(&watch.label, (const char *)label);
		mb_pin_self(cpu);
		struct job j = {kind, det, n, &r};
		pthread_t t;
		int e = pthread_create(&t, NULL, run, &j);
		if (!e)
			e = pthread_join(t, NULL);
		if (e) {
			errno = e;
			mb_die("pthread_create/join");
		}
	}
	mb_progress_clear();
	printf("\n== %s x %ld, detector %s ==\n", kinds[kind], n, det->name);
	if (kind == 1)
		printf("%ld reads on %ld empty pipes%s\n", n, r.npipes,
		       r.npipes < n ? " (RLIMIT_NOFILE could not be raised to 2N + 256: several "
				      "reads wait on each pipe)" : "");
	if (!r.ran) {
		printf("skipped: %s\n", r.skip);
	} else {
		printf("detector used: %s; calls that went to the background: %ld (peak_in_flight %lu, "
		       "sync_at_limit %lu, completed synchronously %ld)\n",
		       r.used, r.inflight, r.peak_in_flight, r.sync_at_limit, r.sync);
		printf("issue all: %.3f s (%.1f us per call); drain all: %.3f s", r.issue_s,
		       r.issue_s * 1e6 / (double)n, r.drain_s);
		if (kind == 0)
			printf(" (last completion %.1f ms after the last sleep was due)", r.late_ms);
		putchar('\n');
		printf("VmRSS kB: before init %ld, after init %ld, end of issue %ld, drained %ld; "
		       "VmHWM %ld kB\n", r.rss[0], r.rss[1], r.rss[2], r.rss[3], r.hwm);
		printf("Threads:  before init %ld, after init %ld, end of issue %ld, drained %ld\n",
		       r.thr[0], r.thr[1], r.thr[2], r.thr[3]);
		printf("open fds: before init %ld, after init %ld, end of issue %ld, drained %ld\n",
		       r.fds[0], r.fds[1], r.fds[2], r.fds[3]);
		if (r.inflight)
			printf("memory per background call: %.1f kB (RSS growth from after init to the end "
			       "of the issue / background calls)\n",
			       (double)(r.rss[2] - r.rss[1]) / (double)r.inflight);
		if (r.missed)
			printf("WARNING: %ld reads blocked without being handed off (released by the "
			       "watchdog after 1 s each)\n", r.missed);
	}
	fflush(stdout);
	if (write(out, &r, sizeof r) != (ssize_t)sizeof r)
		mb_die("write result");
	_exit(0);
}

int main(int argc, char **argv)
{
	long n = 10000;
	int cpu = 0, quick = 0, n_set = 0, kind_mask = 3;
	char only[256] = "";
	static const struct option lo[] = {{"n", required_argument, 0, 'n'},
					   {"quick", no_argument, 0, 'q'},
					   {"kind", required_argument, 0, 'k'},
					   {"detector", required_argument, 0, 'd'},
					   {"cpu", required_argument, 0, 'c'},
					   {"help", no_argument, 0, 'h'},
					   {0, 0, 0, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'n':
			n = strtol(optarg, NULL, 10);
			n_set = 1;
			if (n < 1 || n > 1000000)
				mb_fail("bad --n '%s'", optarg);
			break;
		case 'q': quick = 1; break;
		case 'k':
			if (!strcmp(optarg, "sleep")) kind_mask = 1;
			else if (!strcmp(optarg, "pipe")) kind_mask = 2;
			else if (!strcmp(optarg, "both")) kind_mask = 3;
			else mb_fail("bad --kind '%s' (sleep, pipe, both)", optarg);
			break;
		case 'd': snprintf(only, sizeof only, ",%s,", optarg); break;
		case 'c': cpu = mb_parse_cpu(optarg); break;
		case 'h':
		default:
			printf("usage: scale [--n N (default 10000)] [--quick (N=2000, auto only)] "
			       "[--kind sleep|pipe|both] [--detector auto,probe,upcall,watchdog,eager "
			       "(default all)] [--cpu C|none (default 0)]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (quick) {
		if (!n_set)
			n = 2000;
		if (!only[0])
			snprintf(only, sizeof only, ",auto,");
	}
	struct mb_sysinfo si;
	mb_output_init();
	mb_sysinfo_get(&si);
	if (cpu >= si.ncpu)
		mb_fail("--cpu %d: only %d CPUs", cpu, si.ncpu);
	char cs[32];
	printf("scale: %ld LAIO background calls in flight at once (laio_init max_inflight "
	       "20000); each configuration in its own process\n", n);
	mb_sysinfo_print(stdout, &si);
	printf("# pinning:              caller (and the threads it creates) %s\n",
	       mb_cpu_str(cpu, cs, sizeof cs));

	struct result res[2][NDET];
	memset(res, 0, sizeof res);
	int done[2][NDET] = {{0}};
	for (int k = 0; k < 2; k++) {
		if (!(kind_mask & (1 << k)))
			continue;
		for (int d = 0; d < NDET; d++) {
			char key[40];
			snprintf(key, sizeof key, ",%s,", dets[d].name);
			if (only[0] && !strstr(only, key))
				continue;
			if (k == 0 && !strcmp(dets[d].name, "probe")) {
				/* the probe detector only knows reads and receives: a sleep runs
				   synchronously under it, by design; nothing to measure */
				printf("%-6s %-9s not applicable: probe has no non-blocking form of "
				       "nanosleep\n", kinds[k], dets[d].name);
				continue;
			}
			mb_progress("scale: %s x %ld, detector %s ...", kinds[k], n, dets[d].name);
			int p[2];
			MB_CHECK(pipe2(p, O_CLOEXEC));
			fflush(stdout);
			fflush(stderr);
			pid_t pid = fork();
			MB_CHECK(pid);
			if (pid == 0) {
				close(p[0]);
				child(k, &dets[d], n, cpu, p[1]);
			}
			MB_CHECK(close(p[1]));
			ssize_t got = read(p[0], &res[k][d], sizeof res[k][d]);
			int st;
			MB_CHECK(waitpid(pid, &st, 0));
			MB_CHECK(close(p[0]));
			if (got != (ssize_t)sizeof res[k][d]) {
				memset(&res[k][d], 0, sizeof res[k][d]);
				snprintf(res[k][d].skip, sizeof res[k][d].skip,
					 "FAILED: the child ended with %s %d",
					 WIFSIGNALED(st) ? "signal" : "status",
					 WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
				printf("\n== %s x %ld, detector %s ==\n%s\n", kinds[k], n,
				       dets[d].name, res[k][d].skip);
			}
			done[k][d] = 1;
		}
	}

	int status = 0; /* 4: calls blocked without being handed off; 1: a configuration failed */
	printf("\n== summary: %ld calls in flight ==\n", n);
	printf("%-6s %-9s %-9s %8s %9s %9s %8s %8s %8s %8s %s\n", "kind", "detector", "used",
	       "bg calls", "issue s", "drain s", "kB/call", "RSS MB", "threads", "+fds", "notes");
	for (int k = 0; k < 2; k++) {
		for (int d = 0; d < NDET; d++) {
			if (!done[k][d])
				continue;
			struct result *r = &res[k][d];
			if (!r->ran) {
				printf("%-6s %-9s %s\n", kinds[k], dets[d].name,
				       r->skip[0] ? r->skip : "skipped");
				if (!strncmp(r->skip, "FAILED", 6))
					status = 1;
				continue;
			}
			if ((r->sync || r->missed) && !status)
				status = 4;
			char kb[32] = "-";
			if (r->inflight)
				snprintf(kb, sizeof kb, "%.1f",
					 (double)(r->rss[2] - r->rss[1]) / (double)r->inflight);
			printf("%-6s %-9s %-9s %8ld %9.3f %9.3f %8s %8.1f %8ld %8ld %s%s\n", kinds[k],
			       dets[d].name, r->used, r->inflight, r->issue_s, r->drain_s, kb,
			       (double)r->rss[2] / 1024.0, r->thr[2], r->fds[2] - r->fds[1],
			       r->sync ? "some calls ran synchronously" : "",
			       r->sync_at_limit ? " (sync_at_limit)" : "");
		}
	}
	return status;
}
