/* test_race.c - the handoff race under load: many calls from several threads, some of which
 * block (the pipe ran dry) and some of which do not, each reader's completions accounted for
 * exactly once. The writer's bursts end at random moments, so reads block just as data
 * arrives: the runner's return races the detector's claim. LAIO_RACE_CALLS scales it. */
#include "test-util.h"
#include "sa.h"

struct reader {
	int p[2];
	long calls;
	enum laio_detector d;
	long sync_bytes, async_bytes, blocked, dup_or_unknown;
	unsigned seed;
	int skipped;
};

/* An open-addressing set of the handles in flight. */
#define SET_SIZE 8192
static bool set_add(void **set, void *h)
{
	size_t i = ((uintptr_t)h >> 4) % SET_SIZE;
	while (set[i]) {
		if (set[i] == h)
			return false;
		i = (i + 1) % SET_SIZE;
	}
	set[i] = h;
	return true;
}

static bool set_del(void **set, void *h)
{
	size_t i = ((uintptr_t)h >> 4) % SET_SIZE;
	while (set[i] && set[i] != h)
		i = (i + 1) % SET_SIZE;
	if (!set[i])
		return false;
	set[i] = NULL;
	/* re-insert the rest of the cluster */
	for (size_t j = (i + 1) % SET_SIZE; set[j]; j = (j + 1) % SET_SIZE) {
		void *x = set[j];
		set[j] = NULL;
		set_add(set, x);
	}
	return true;
}

static void *feeder(void *arg)
{
	struct reader *r = arg;
	long left = r->calls;
	char buf[64];
	memset(buf, 'f', sizeof buf);
	while (left > 0) {
		long n = 1 + rand_r(&r->seed) % 12;
		if (n > left)
			n = left;
		ssize_t w = write(r->p[1], buf, (size_t)n);
		if (w > 0)
			left -= w;
		if (rand_r(&r->seed) % 3 == 0) {
			struct timespec ts = { 0, (rand_r(&r->seed) % 40) * 1000 };
			nanosleep(&ts, NULL);
		} else {
			for (volatile int k = rand_r(&r->seed) % 20000; k > 0; k--)
				;
		}
	}
	return NULL;
}

static void take(struct reader *r, void **set, struct laio_completion *c, int n)
{
	for (int i = 0; i < n; i++) {
		if (!set_del(set, c[i].laio_handle))
			r->dup_or_unknown++;
		if (c[i].laio_return_value == 1)
			r->async_bytes++;
	}
}

static void *reader(void *arg)
{
	struct reader *r = arg;
	struct laio_config cfg = { .detector = r->d, .max_inflight = 4000 };
	if (laio_init(&cfg) < 0) {
		r->skipped = 1;
		return NULL;
	}
	void **set = calloc(SET_SIZE, sizeof(void *));
	struct laio_completion c[64];
	struct timespec zero = { 0, 0 };
	pthread_t f;
	pthread_create(&f, NULL, feeder, r);
	long inflight = 0;
	char b;
	for (long i = 0; i < r->calls; i++) {
		long x = laio_syscall(SYS_read, r->p[0], &b, 1);
		if (x == 1) {
			r->sync_bytes++;
		} else if (x == -1 && errno == EINPROGRESS) {
			r->blocked++;
			inflight++;
			if (!set_add(set, laio_gethandle()))
				r->dup_or_unknown++;
		} else {
			cr_expect(0, "read: %ld %s", x, strerror(errno));
			break;
		}
		if ((i & 15) == 0 || inflight > 32) {
			int n = laio_poll(c, 64, inflight > 32 ? NULL : &zero);
			take(r, set, c, n);
			inflight -= n;
		}
	}
	while (inflight > 0) {
		struct timespec ts = { 10, 0 };
		int n = laio_poll(c, 64, &ts);
		if (n <= 0)
			break;
		take(r, set, c, n);
		inflight -= n;
	}
	pthread_join(f, NULL);
	int n = laio_poll(c, 64, &zero);
	cr_expect_eq(n, 0, "no extra completion");
	cr_expect_eq(inflight, 0, "every background read completed");
	free(set);
	return NULL;
}

static void race(enum laio_detector d, long per_thread, int nthreads)
{
	struct reader r[8] = { 0 };
	pthread_t t[8];
	struct sa_counters c0, c1;
	sa_counters(&c0);
	double t0 = now_s();
	for (int i = 0; i < nthreads; i++) {
		r[i].calls = per_thread;
		r[i].d = d;
		r[i].seed = 1234u + (unsigned)i;
		make_pipe(r[i].p);
		pthread_create(&t[i], NULL, reader, &r[i]);
	}
	long sync = 0, async = 0, blocked = 0;
	for (int i = 0; i < nthreads; i++) {
		pthread_join(t[i], NULL);
		if (r[i].skipped) {
			cr_log_warn("detector %s is not available here: skipped", det_names[d]);
			return;
		}
		cr_expect_eq(r[i].dup_or_unknown, 0, "a completion was duplicated or unknown");
		cr_expect_eq(r[i].sync_bytes + r[i].async_bytes, per_thread,
			     "thread %d: %ld + %ld bytes, want %ld", i, r[i].sync_bytes,
			     r[i].async_bytes, per_thread);
		sync += r[i].sync_bytes;
		async += r[i].async_bytes;
		blocked += r[i].blocked;
		close(r[i].p[0]);
		close(r[i].p[1]);
	}
	sa_counters(&c1);
	cr_log_info("%s: %ld calls in %.2f s: %ld did not block, %ld blocked; claims won %lu, "
		    "lost to the returning runner %lu; calls moved %lu", det_names[d],
		    per_thread * nthreads, now_s() - t0, sync, blocked, c1.claims_won - c0.claims_won,
		    c1.claims_lost - c0.claims_lost, c1.moved - c0.moved);
	cr_expect_gt(blocked, 0, "the test must make some calls block");
}

/* Under a sanitizer (LAIO_SANITIZED) each call costs several times as much while the runner's
 * return still races the claim on every blocked read: 100,000 calls per thread still make
 * thousands of claims under ASan, dozens of them lost to the returning runner (both orders). */
static long calls(long dflt)
{
	const char *e = getenv("LAIO_RACE_CALLS");
	if (e && atol(e) > 0)
		return atol(e);
	return getenv("LAIO_SANITIZED") ? dflt * 2 / 5 : dflt;
}

Test(race, probe, .timeout = 240)
{
	race(LAIO_DETECT_PROBE, calls(250000), 4);
}

Test(race, upcall, .timeout = 240)
{
	race(LAIO_DETECT_UPCALL, calls(250000), 4);
}

Test(race, watchdog, .timeout = 240)
{
	race(LAIO_DETECT_WATCHDOG, calls(250000), 4);
}
