/* test_macrobench.c - the macrobench web server, every architecture: exact bytes under
 * concurrent keep-alive and connection-per-request clients, and the error statuses; and the
 * tables scripts/results-tables.sh makes of its CSV.
 * Runs $LAIO_BUILD/macrobench/server (LAIO_BUILD defaults to "build"); builds nothing. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include "test-util.h"

#define NFILES 24
static const long sizes[NFILES] = { 0, 1, 100, 1000, 4095, 4096, 4097, 8192, 20000, 65535, 65536, 65537,
				     100000, 131072, 200000, 262145, 300000, 500000, 700001, 1048576,
				     3, 17, 5000, 12345 };
static char dir[64];
static uint64_t sums[NFILES];
static int port;
static pid_t pid = -1;

static uint64_t fnv(const unsigned char *p, size_t n, uint64_t h)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ULL;
	return h;
}

static void make_files(void)
{
	strcpy(dir, "/tmp/laio-mb-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	char p[256];
	snprintf(p, sizeof p, "%s/sub", dir);
	mkdir(p, 0755);
	unsigned x = 12345;
	for (int i = 0; i < NFILES; i++) {
		unsigned char *b = malloc((size_t)sizes[i] + 1);
		for (long k = 0; k < sizes[i]; k++)
			b[k] = (unsigned char)((x = x * 1103515245 + 12345) >> 16);
		sums[i] = fnv(b, (size_t)sizes[i], 1469598103934665603ULL);
		snprintf(p, sizeof p, "%s/%sf%02d.bin", dir, i % 2 ? "sub/" : "", i);
		FILE *f = fopen(p, "w");
		cr_assert_not_null(f);
		fwrite(b, 1, (size_t)sizes[i], f);
		fclose(f);
		free(b);
	}
	snprintf(p, sizeof p, "%s/secret", dir);
	FILE *f = fopen(p, "w");
	fputs("outside\n", f);
	fclose(f);
}

static void remove_files(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		cr_log_warn("could not remove %s", dir);
}

static const char *server_path(void)
{
	static char p[512];
	const char *b = getenv("LAIO_BUILD");
	snprintf(p, sizeof p, "%s/macrobench/server", b && *b ? b : "build");
	return p;
}

static void start(const char *arch)
{
	if (access(server_path(), X_OK) != 0)
		cr_skip_test("%s does not exist (build it with make -C macrobench)", server_path());
	make_files();
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	pid = fork();
	if (pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		/* Under AddressSanitizer: the server exits on SIGTERM without freeing the connections
		   still open (the kernel closes them); that is not a leak worth a failure. */
		setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
		execl(server_path(), "server", "--root", dir, "--port", "0", "--arch", arch, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	char buf[256] = "";
	size_t n = 0;
	while (n < sizeof buf - 1 && !strchr(buf, '\n')) {
		ssize_t r = read(fds[0], buf + n, sizeof buf - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		buf[n] = 0;
	}
	close(fds[0]);
	cr_assert(sscanf(buf, "listening on %d", &port) == 1, "server %s did not start: '%s'", arch, buf);
}

static void stop(void)
{
	if (pid > 0) {
		kill(pid, SIGTERM);
		int st;
		waitpid(pid, &st, 0);
		cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "server exit status %d", st);
		pid = -1;
	}
	remove_files();
}

static int dial(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct timeval tv = { 10, 0 };
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
		close(s);
		return -1;
	}
	return s;
}

static int send_all(int s, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(s, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

struct resp {
	int status;
	long clen;       /* Content-Length, -1 if absent */
	long body_len;
	uint64_t sum;
	int closed;      /* "Connection: close" */
};

/* Read one response; the body is expected unless head_only. 0 or -1. */
static int read_resp(int s, int head_only, struct resp *r)
{
	static __thread char buf[1 << 16];
	size_t n = 0;
	char *end = NULL;
	while (!end) {
		if (n == sizeof buf - 1)
			return -1;
		ssize_t k = recv(s, buf + n, sizeof buf - 1 - n, 0);
		if (k <= 0)
			return -1;
		n += (size_t)k;
		buf[n] = 0;
		end = strstr(buf, "\r\n\r\n");
	}
	*end = 0;
	memset(r, 0, sizeof *r);
	r->clen = -1;
	if (sscanf(buf, "HTTP/1.1 %d", &r->status) != 1)
		return -1;
	char *cl = strcasestr(buf, "\r\nContent-Length:");
	if (cl)
		r->clen = atol(cl + 17);
	r->closed = strcasestr(buf, "\r\nConnection: close") != NULL;
	size_t have = n - (size_t)(end + 4 - buf);
	long want = head_only || r->status == 304 ? 0 : r->clen;
	r->sum = fnv((unsigned char *)end + 4, have, 1469598103934665603ULL);
	r->body_len = (long)have;
	while (r->body_len < want) {
		ssize_t k = recv(s, buf, sizeof buf, 0);
		if (k <= 0)
			return -1;
		r->sum = fnv((unsigned char *)buf, (size_t)k, r->sum);
		r->body_len += k;
	}
	return 0;
}

static void file_url(int i, char *out, size_t cap)
{
	snprintf(out, cap, "/%sf%02d.bin", i % 2 ? "sub/" : "", i);
}

static _Atomic int failures;

static void *client(void *arg)
{
	long id = (long)arg;
	int keep = id % 2 == 0;
	for (int round = 0; round < 3; round++) {
		int s = keep ? dial() : -1;
		for (int j = 0; j < NFILES; j++) {
			int i = (int)((j + id * 5) % NFILES);
			if (!keep)
				s = dial();
			if (s < 0) {
				failures++;
				return NULL;
			}
			char url[64], req[256];
			file_url(i, url, sizeof url);
			int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n", url,
					 keep ? "" : "Connection: close\r\n");
			struct resp r;
			if (send_all(s, req, (size_t)n) || read_resp(s, 0, &r) || r.status != 200 ||
			    r.clen != sizes[i] || r.body_len != sizes[i] || r.sum != sums[i]) {
				fprintf(stderr, "client %ld: %s: status %d clen %ld body %ld\n", id, url, r.status,
					r.clen, r.body_len);
				failures++;
			}
			if (!keep) {
				char c;
				if (recv(s, &c, 1, 0) != 0) /* the server closes after Connection: close */
					failures++;
				close(s);
			}
		}
		if (keep)
			close(s);
	}
	return NULL;
}

/* Send raw bytes on a new connection; the response's status (and HEAD body check). */
static int status_of(const char *req, int head_only, struct resp *out)
{
	int s = dial();
	cr_assert(s >= 0);
	struct resp r;
	int st = -1;
	if (send_all(s, req, strlen(req)) == 0 && read_resp(s, head_only, &r) == 0)
		st = r.status;
	if (out)
		*out = r;
	close(s);
	return st;
}

static void run_arch(const char *arch)
{
	start(arch);
	pthread_t t[6];
	for (long i = 0; i < 6; i++)
		pthread_create(&t[i], NULL, client, (void *)i);
	for (int i = 0; i < 6; i++)
		pthread_join(t[i], NULL);
	cr_expect_eq(failures, 0, "%s: %d transfers wrong", arch, (int)failures);

	struct resp r;
	cr_expect_eq(status_of("GET /nope.bin HTTP/1.1\r\nHost: x\r\n\r\n", 0, NULL), 404);
	cr_expect_eq(status_of("GET /../secret HTTP/1.1\r\nHost: x\r\n\r\n", 0, NULL), 403);
	cr_expect_eq(status_of("GET /sub/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 0, NULL), 403);
	cr_expect_eq(status_of("GET /%2e%2e/secret HTTP/1.1\r\nHost: x\r\n\r\n", 0, NULL), 403);
	cr_expect_eq(status_of("GET /sub/%2E%2e/%2e%2E/x HTTP/1.1\r\nHost: x\r\n\r\n", 0, NULL), 403);
	cr_expect_eq(status_of("GET /sub HTTP/1.1\r\nHost: x\r\n\r\n", 0, NULL), 403);
	cr_expect_eq(status_of("GET http://x/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 0, NULL), 400);
	cr_expect_eq(status_of("GET /etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 0, NULL), 404);
	cr_expect_eq(status_of("GARBAGE\r\n\r\n", 0, NULL), 400);
	cr_expect_eq(status_of("GET / HTTP/1.1\r\n\r\n", 0, NULL), 400);           /* no Host */
	cr_expect_eq(status_of("GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", 0, NULL), 400);
	cr_expect_eq(status_of("GET / HTTP/2.0\r\nHost: x\r\n\r\n", 0, NULL), 400);
	cr_expect_eq(status_of("POST /f00.bin HTTP/1.1\r\nHost: x\r\n\r\n", 0, NULL), 405);
	cr_expect_eq(status_of("DELETE /f00.bin HTTP/1.1\r\nHost: x\r\n\r\n", 0, NULL), 405);
	char *big = malloc(20000);
	strcpy(big, "GET /f02.bin HTTP/1.1\r\nHost: x\r\nX-Big: ");
	memset(big + strlen(big), 'a', 12000);
	strcpy(big + strlen(big) - 0, "\r\n\r\n");
	cr_expect_eq(status_of(big, 0, NULL), 431);
	free(big);
	cr_expect_eq(status_of("GET /f02.bin HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\n\r\n",
			       0, NULL), 304);
	cr_expect_eq(status_of("GET /f02.bin HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: Mon, 01 Jan 1990 00:00:00 GMT\r\n\r\n",
			       0, &r), 200);
	cr_expect_eq(r.body_len, sizes[2]);
	/* HEAD: the size in Content-Length, no body, and the connection closes right after */
	cr_expect_eq(status_of("HEAD /f14.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 1, &r), 200);
	cr_expect_eq(r.clen, sizes[14]);
	cr_expect_eq(r.body_len, 0);
	/* HTTP/1.0 without keep-alive: the server closes */
	cr_expect_eq(status_of("GET /f04.bin HTTP/1.0\r\n\r\n", 0, &r), 200);
	cr_expect(r.closed);
	/* a 404 keeps the connection: the next request on it works */
	int s = dial();
	const char *two = "GET /none HTTP/1.1\r\nHost: x\r\n\r\n";
	cr_assert_eq(send_all(s, two, strlen(two)), 0);
	cr_expect(read_resp(s, 0, &r) == 0 && r.status == 404);
	const char *ok = "GET /sub/f01.bin HTTP/1.1\r\nHost: x\r\n\r\n";
	cr_assert_eq(send_all(s, ok, strlen(ok)), 0);
	cr_expect(read_resp(s, 0, &r) == 0 && r.status == 200 && r.sum == sums[1]);
	close(s);
	stop();
}

Test(macrobench, nb_b, .timeout = 120) { run_arch("NB-B"); }
Test(macrobench, laio_laio, .timeout = 120) { run_arch("LAIO-LAIO"); }
Test(macrobench, nb_laio, .timeout = 120) { run_arch("NB-LAIO"); }
Test(macrobench, nb_amted, .timeout = 120) { run_arch("NB-AMTED"); }
Test(macrobench, io_uring, .timeout = 120) { run_arch("io_uring"); }

/* ---- scripts/results-tables.sh: the web-server section of docs/results.md ---- */

static const char *tables_script(void)
{
	const char *s = "scripts/results-tables.sh";
	if (access(s, R_OK) != 0)
		cr_skip_test("%s not found: the suite runs from the source tree's top directory", s);
	return s;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	static char text[65536];
	size_t n = fread(text, 1, sizeof text - 1, f);
	text[n] = 0;
	fclose(f);
	return text;
}

static int count_of(const char *text, const char *what)
{
	int n = 0;
	for (const char *p = text; (p = strstr(p, what)); p += strlen(what))
		n++;
	return n;
}

/* A build directory without macrobench.csv must not erase the tables of the last run. */
Test(results_tables, keeps_a_section_whose_csv_is_absent)
{
	const char *script = tables_script();
	char d[] = "/tmp/laio-rt-XXXXXX", md[64], cmd[512];
	cr_assert_not_null(mkdtemp(d));
	snprintf(md, sizeof md, "%s/results.md", d);
	FILE *f = fopen(md, "w");
	fputs("# R\n\n<!-- generated tables -->\n### The web server (`build/macrobench.csv`)\n\n"
	      "| LAIO-LAIO | 12345 |\n\n<!-- end of generated tables -->\n\nafter\n", f);
	fclose(f);
	snprintf(cmd, sizeof cmd, "sh %s %s --update %s && sh %s %s --update %s", script, d, md, script, d, md);
	cr_assert_eq(system(cmd), 0);
	const char *t = slurp(md);
	cr_expect_eq(count_of(t, "| LAIO-LAIO | 12345 |"), 1, "the old table is gone:\n%s", t);
	cr_expect_eq(count_of(t, "Kept from an earlier run"), 1, "the note is missing or repeated:\n%s", t);
	cr_expect_eq(count_of(t, "after\n"), 1);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
	cr_expect_eq(system(cmd), 0);
}

/* Repetitions of a point: the median, the spread, the ratio to the best other, and a repetition
 * during which other processes held the server's CPU left out. */
Test(results_tables, medians_over_repetitions)
{
	const char *script = tables_script();
	char d[] = "/tmp/laio-rt-XXXXXX", csv[64], out[64], cmd[512];
	cr_assert_not_null(mkdtemp(d));
	snprintf(csv, sizeof csv, "%s/macrobench.csv", d);
	snprintf(out, sizeof out, "%s/tables.md", d);
	FILE *f = fopen(csv, "w");
	fputs("set,arch,conns,rep,requests,throughput_rps,mib_s,lat_mean_ms,lat_p50_ms,lat_p99_ms,errors,"
	      "server_cpu_pct,idle_class_cpu_pct,others_on_server_cpus_pct\n"
	      "berkeley,LAIO-LAIO,64,1,1,100,1,1,1,5,0,90,3,1\n"
	      "berkeley,NB-B,64,1,1,150,1,1,1,7,0,80,0,1\n"
	      "berkeley,LAIO-LAIO,64,2,1,300,1,1,1,6,0,92,4,1\n"
	      "berkeley,NB-B,64,2,1,150,1,1,1,7,0,80,0,1\n"
	      "berkeley,LAIO-LAIO,64,3,1,200,1,1,1,4,0,91,5,1\n"
	      "berkeley,NB-B,64,3,1,150,1,1,1,7,0,80,0,1\n"
	      "berkeley,LAIO-LAIO,64,4,1,900,1,1,1,1,0,20,0,75\n", f); /* others took 75%: left out */
	fclose(f);
	snprintf(cmd, sizeof cmd, "sh %s %s web > %s", script, d, out);
	cr_assert_eq(system(cmd), 0);
	const char *t = slurp(out);
	cr_expect(strstr(t, "| LAIO-LAIO | 200 | 100-300 | 3/4 | 64 | 5.0 | 91 / 4 | 1 | 1.33 |"), "%s", t);
	cr_expect(strstr(t, "LAIO-LAIO / NB-B = 1.33"), "%s", t);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
	cr_expect_eq(system(cmd), 0);
}
