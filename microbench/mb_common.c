/* mb_common.c - see mb_common.h. */
#define _GNU_SOURCE
#include "mb_common.h"

#include <errno.h>
#include <limits.h>
#include <libgen.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

static int progress_tty = -1; /* stderr is a terminal: -1 not yet asked */
static int progress_shown;     /* a progress line is on the terminal now */

void mb_output_init(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	progress_tty = isatty(STDERR_FILENO);
}

/* One write(2) for the whole text, so that nothing written meanwhile can land inside it. */
static void put_err(const char *text, size_t n)
{
	while (n > 0) {
		ssize_t w = write(STDERR_FILENO, text, n);
		if (w <= 0) {
			if (w < 0 && errno == EINTR)
				continue;
			return; /* stderr gone: progress and notes are best effort */
		}
		text += w;
		n -= (size_t)w;
	}
}

void mb_progress_clear(void)
{
	if (progress_shown) {
		put_err("\r\033[K", 4);
		progress_shown = 0;
	}
}

void mb_progress(const char *fmt, ...)
{
	if (progress_tty < 0)
		mb_output_init();
	if (!progress_tty)
		return;
	char buf[256] = "\r";
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf + 1, sizeof buf - 8, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	size_t len = strlen(buf);
	memcpy(buf + len, "\033[K", 3);
	fflush(stdout);
	put_err(buf, len + 3);
	progress_shown = 1;
}

void mb_note(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	size_t len = strlen(buf);
	buf[len++] = '\n';
	mb_progress_clear();
	fflush(stdout);
	put_err(buf, len);
}

void mb_die(const char *fmt, ...)
{
	int e = errno;
	mb_progress_clear();
	fflush(stdout);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, ": %s\n", strerror(e));
	exit(1);
}

void mb_fail(const char *fmt, ...)
{
	mb_progress_clear();
	fflush(stdout);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

void mb_pin_self(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	if (cpu >= 0) {
		CPU_SET(cpu, &set);
	} else {
		long n = sysconf(_SC_NPROCESSORS_CONF);
		if (n < 1)
			n = 1;
		for (long i = 0; i < n && i < CPU_SETSIZE; i++)
			CPU_SET(i, &set);
	}
	if (sched_setaffinity(0, sizeof set, &set) == -1)
		mb_die("sched_setaffinity(cpu %d)", cpu);
}

int mb_parse_cpu(const char *s)
{
	if (!strcmp(s, "none") || !strcmp(s, "-1"))
		return -1;
	char *end;
	long v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v < 0 || v >= CPU_SETSIZE)
		mb_fail("bad CPU '%s' (a CPU number or 'none')", s);
	return (int)v;
}

const char *mb_cpu_str(int cpu, char *buf, size_t len)
{
	if (cpu < 0)
		snprintf(buf, len, "unpinned");
	else
		snprintf(buf, len, "CPU %d", cpu);
	return buf;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

void mb_sort(double *v, size_t n)
{
	qsort(v, n, sizeof *v, cmp_double);
}

double mb_pct_sorted(const double *v, size_t n, double p)
{
	if (n == 0)
		return 0.0;
	double pos = p / 100.0 * (double)(n - 1);
	size_t i = (size_t)pos;
	if (i + 1 >= n)
		return v[n - 1];
	double f = pos - (double)i;
	return v[i] * (1.0 - f) + v[i + 1] * f;
}

static void read_first_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(buf, len, "unreadable (%s)", strerror(errno));
		return;
	}
	if (!fgets(buf, (int)len, f))
		snprintf(buf, len, "empty");
	buf[strcspn(buf, "\n")] = '\0';
	fclose(f);
}

void mb_sysinfo_get(struct mb_sysinfo *si)
{
	memset(si, 0, sizeof *si);
	snprintf(si->cpu_model, sizeof si->cpu_model, "unknown");
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (f) {
		char line[512];
		while (fgets(line, sizeof line, f)) {
			if (!strncmp(line, "model name", 10)) {
				char *p = strchr(line, ':');
				if (p) {
					p++;
					while (*p == ' ' || *p == '\t')
						p++;
					p[strcspn(p, "\n")] = '\0';
					snprintf(si->cpu_model, sizeof si->cpu_model, "%s", p);
				}
				break;
			}
		}
		fclose(f);
	}
	si->ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
	si->root = geteuid() == 0;
	read_first_line("/proc/sys/kernel/perf_event_paranoid", si->paranoid, sizeof si->paranoid);
	struct utsname u;
	if (uname(&u) == -1)
		mb_die("uname");
	snprintf(si->kernel, sizeof si->kernel, "%s (%s)", u.release, u.version);
	int slack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
	if (slack == -1)
		snprintf(si->timer_slack, sizeof si->timer_slack, "unknown");
	else
		snprintf(si->timer_slack, sizeof si->timer_slack, "%d ns", slack);
}

void mb_sysinfo_print(FILE *f, const struct mb_sysinfo *si)
{
	fprintf(f, "# CPU model:            %s\n", si->cpu_model);
	fprintf(f, "# online CPUs:          %d\n", si->ncpu);
	fprintf(f, "# root:                 %s\n", si->root ? "yes" : "no");
	fprintf(f, "# perf_event_paranoid:  %s\n", si->paranoid);
	fprintf(f, "# kernel:               %s\n", si->kernel);
	fprintf(f, "# timer slack (main):   %s\n", si->timer_slack);
}

const char *mb_sysinfo_line(const struct mb_sysinfo *si, char *buf, size_t len)
{
	snprintf(buf, len, "%s, %d CPUs, kernel %s, %s, perf_event_paranoid %s", si->cpu_model,
		 si->ncpu, si->kernel, si->root ? "root" : "not root", si->paranoid);
	return buf;
}

long mb_status_field(const char *name)
{
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		mb_die("fopen /proc/self/status");
	char line[256];
	size_t nl = strlen(name);
	long v = -1;
	while (fgets(line, sizeof line, f)) {
		if (!strncmp(line, name, nl) && line[nl] == ':') {
			v = strtol(line + nl + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

void mb_default_outdir(char *buf, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	snprintf(buf, len, "build");
	if (n <= 0)
		return;
	exe[n] = '\0';
	char *dir = dirname(exe);           /* <root>/build/microbench */
	char d1[PATH_MAX];
	snprintf(d1, sizeof d1, "%s", dir);
	if (strcmp(basename(d1), "microbench"))
		return;
	char *bdir = dirname(dir);          /* <root>/build */
	char d2[PATH_MAX];
	snprintf(d2, sizeof d2, "%s", bdir);
	if (strcmp(basename(d2), "build"))
		return;
	snprintf(buf, len, "%s", bdir);
}

const char *mb_fmt_ns(double ns, char *buf, size_t len)
{
	if (ns < 1e3)
		snprintf(buf, len, "%.0f ns", ns);
	else if (ns < 1e6)
		snprintf(buf, len, "%.2f us", ns / 1e3);
	else if (ns < 1e9)
		snprintf(buf, len, "%.2f ms", ns / 1e6);
	else
		snprintf(buf, len, "%.2f s", ns / 1e9);
	return buf;
}

/* ---- the writer process --------------------------------------------------------------------- */

/* The set mb_pin_self(cpu) would use, built before a fork so the child only has to apply it. */
static void cpu_mask(int cpu, cpu_set_t *set)
{
	CPU_ZERO(set);
	if (cpu >= 0) {
		CPU_SET(cpu, set);
		return;
	}
	long n = sysconf(_SC_NPROCESSORS_CONF);
	for (long i = 0; i < (n < 1 ? 1 : n) && i < CPU_SETSIZE; i++)
		CPU_SET(i, set);
}

/* For every byte on the control pipe, one byte into the data pipe; exit on EOF. A forked child
 * of a threaded program: only system calls and _exit. */
static void writer_main(int ctl_rfd, int data_wfd, const cpu_set_t *mask)
{
	if (sched_setaffinity(0, sizeof *mask, mask) == -1)
		_exit(2);
	char b;
	for (;;) {
		ssize_t r = read(ctl_rfd, &b, 1);
		if (r == 0)
			_exit(0);
		if (r == -1 && errno == EINTR)
			continue;
		if (r != 1 || write(data_wfd, "x", 1) != 1)
			_exit(1);
	}
}

void mb_writer_start(struct mb_writer *w, int cpu)
{
	int ctl[2], data[2];
	MB_CHECK(pipe2(ctl, O_CLOEXEC));
	MB_CHECK(pipe2(data, O_CLOEXEC));
	cpu_set_t mask;
	cpu_mask(cpu, &mask);
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	MB_CHECK(pid);
	if (pid == 0) {
		close(ctl[1]);
		close(data[0]);
		writer_main(ctl[0], data[1], &mask);
	}
	MB_CHECK(close(ctl[0]));
	w->pid = pid;
	w->ctl_wfd = ctl[1];
	w->data_rfd = data[0];
	w->data_wfd = data[1];
}

void mb_writer_kick(const struct mb_writer *w)
{
	ssize_t r;
	do
		r = write(w->ctl_wfd, "w", 1);
	while (r == -1 && errno == EINTR);
	if (r != 1)
		mb_die("write to the writer's control pipe");
}

void mb_writer_pin(const struct mb_writer *w, int cpu)
{
	cpu_set_t mask;
	cpu_mask(cpu, &mask);
	if (sched_setaffinity(w->pid, sizeof mask, &mask) == -1)
		mb_die("sched_setaffinity(writer %d, cpu %d)", (int)w->pid, cpu);
}

void mb_writer_stop(struct mb_writer *w)
{
	MB_CHECK(close(w->ctl_wfd)); /* EOF: the writer exits */
	int st;
	MB_CHECK(waitpid(w->pid, &st, 0));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		mb_fail("the writer process ended with status %d", st);
	MB_CHECK(close(w->data_rfd));
	MB_CHECK(close(w->data_wfd));
}

/* ---- CPU hogs --------------------------------------------------------------------------------- */

#define MAX_HOGS 256
static pid_t hog_pid[MAX_HOGS];
static int nhogs;
static pid_t hogs_owner; /* a forked child inherits the table: only the owner kills */

static void hogs_at_exit(void)
{
	mb_hogs_stop();
}

void mb_hogs_start(int n, int pin)
{
	static int registered;
	if (!registered) {
		if (atexit(hogs_at_exit))
			mb_fail("atexit");
		registered = 1;
	}
	hogs_owner = getpid();
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu < 1)
		ncpu = 1;
	fflush(stdout);
	fflush(stderr);
	for (int i = 0; i < n && nhogs < MAX_HOGS; i++) {
		cpu_set_t mask;
		cpu_mask(pin ? (int)(i % ncpu) : -1, &mask);
		pid_t pid = fork();
		MB_CHECK(pid);
		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != hogs_owner) /* the parent died before the prctl */
				_exit(0);
			alarm(600);
			if (sched_setaffinity(0, sizeof mask, &mask) == -1)
				_exit(2);
			for (volatile unsigned long x = 0;; x++)
				;
		}
		hog_pid[nhogs++] = pid;
	}
}

void mb_hogs_stop(void)
{
	if (getpid() != hogs_owner)
		return;
	for (int i = 0; i < nhogs; i++)
		kill(hog_pid[i], SIGKILL);
	for (int i = 0; i < nhogs; i++)
		while (waitpid(hog_pid[i], NULL, 0) == -1 && errno == EINTR)
			;
	nhogs = 0;
}

/* ---- the summary's bars ------------------------------------------------------------------------ */

void mb_bar(const char *path, const struct mb_sysinfo *si, const char *figure, const char *value,
	    const char *bar, int met)
{
	char line[512];
	snprintf(line, sizeof line, "%-76s %-24s %-18s %s\n", figure, value, bar,
		 met ? "met" : "NOT MET");
	fputs(line, stdout);
	if (!path || !path[0])
		return;
	FILE *f = fopen(path, "a");
	if (!f)
		mb_die("fopen %s", path);
	if (fseek(f, 0, SEEK_END) == 0 && ftell(f) == 0) {
		char m[512];
		fprintf(f, "machine: %s\n", mb_sysinfo_line(si, m, sizeof m));
		fprintf(f, "%-76s %-24s %-18s %s\n", "figure", "this run", "bar", "");
	}
	fputs(line, f);
	if (fclose(f) == EOF)
		mb_die("fclose %s", path);
}

static const char *phase_name(int ph)
{
	switch (ph) {
	case MB_PH_IDLE: return "idle";
	case MB_PH_SYSCALL: return "inside the call under test (laio_syscall or read)";
	case MB_PH_WAIT: return "waiting for a completion (laio_poll or the variant's wait)";
	default: return "elsewhere";
	}
}

static void *watch_main(void *arg)
{
	struct mb_watch *w = arg;
	unsigned long last = atomic_load(&w->progress);
	int last_phase = atomic_load(&w->phase);
	const char *last_label = atomic_load(&w->label);
	uint64_t since = mb_now_ns();
	int rescued_this = 0;
	for (;;) {
		struct timespec d = {0, 100 * 1000 * 1000};
		while (nanosleep(&d, &d) == -1 && errno == EINTR)
			;
		unsigned long p = atomic_load_explicit(&w->progress, memory_order_relaxed);
		int ph = atomic_load_explicit(&w->phase, memory_order_relaxed);
		const char *lab = atomic_load(&w->label);
		uint64_t now = mb_now_ns();
		if (p != last || ph != last_phase || lab != last_label || ph == MB_PH_IDLE) {
			last = p;
			last_phase = ph;
			last_label = lab;
			since = now;
			rescued_this = 0;
			continue;
		}
		double stuck_ms = (double)(now - since) / 1e6;
		int fd = atomic_load(&w->rescue_fd);
		if (ph == MB_PH_SYSCALL && fd >= 0 && !rescued_this && stuck_ms >= w->rescue_ms) {
			fprintf(stderr,
				"\nwatchdog: %s: step %lu has been blocked inside the call for %.0f ms "
				"without being handed off (no EINPROGRESS): the detector missed the "
				"block; writing one byte to release it\n",
				lab ? lab : "?", p, stuck_ms);
			if (write(fd, "R", 1) != 1)
				fprintf(stderr, "watchdog: rescue write failed: %s\n", strerror(errno));
			atomic_fetch_add(&w->rescued, 1);
			rescued_this = 1;
		}
		if (stuck_ms >= w->abort_ms) {
			fprintf(stderr,
				"\nwatchdog: HANG: %s made no progress for %.0f s; it is at step %lu, "
				"%s. Aborting.\n",
				lab ? lab : "?", stuck_ms / 1e3, p, phase_name(ph));
			fflush(stderr);
			mb_hogs_stop(); /* _exit runs no atexit handler */
			_exit(3);
		}
	}
	return NULL;
}

void mb_watch_start(struct mb_watch *w, int rescue_ms, int abort_ms)
{
	atomic_init(&w->progress, 0);
	atomic_init(&w->phase, MB_PH_IDLE);
	atomic_init(&w->rescue_fd, -1);
	atomic_init(&w->rescued, 0);
	atomic_init(&w->label, (const char *)NULL);
	w->rescue_ms = rescue_ms;
	w->abort_ms = abort_ms;
	pthread_t t;
	pthread_attr_t a;
	int e = pthread_attr_init(&a);
	if (!e)
		e = pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	if (!e)
		e = pthread_create(&t, &a, watch_main, w);
	if (e) {
		errno = e;
		mb_die("pthread_create(watchdog)");
	}
	pthread_attr_destroy(&a);
}
