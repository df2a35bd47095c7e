/* test_stress_small.c - the stress of test/stress/ (stress_core.h), short: about five seconds
 * per detector from four threads, a random mix of calls that block and calls that do not, with
 * laio_cancel() mixed in. Every completion must be accounted for exactly once and every byte
 * must balance. The long run is `make stress`. */
#include "test-util.h"
#include "stress/stress_core.h"

/* Under ThreadSanitizer a thread cannot make more than some ten thousand background calls (its
 * shadow call stack grows with each handoff: docs/reliability.md): 4 x 4000 calls there. */
#if defined(__SANITIZE_THREAD__)
#define SMALL_CALLS_SANITIZED 16000
#else
#define SMALL_CALLS_SANITIZED 200000
#endif

static void small(int d)
{
	bool slow = getenv("LAIO_SANITIZED") != NULL;
	struct stress_opts o = { .calls = slow ? SMALL_CALLS_SANITIZED : 2000000, .threads = 4,
				 .seconds = slow ? 3 : 5, .seed = 7, .max_errors_shown = 20 };
	struct stress_totals t;
	long errors = stress_run(d, &o, &t);
	char *line = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&line, &len);
	if (f) {
		stress_print(f, &t);
		fclose(f);
		cr_log_info("%s", line);
		free(line);
	}
	if (t.skipped) {
		cr_log_warn("detector %s is not available here: skipped", det_names[d]);
		return;
	}
	cr_expect_eq(errors, 0, "[%s] %ld accounting error(s) (details on stderr)", det_names[d],
		     errors);
	cr_expect_eq(t.completions, t.blocked, "[%s] %ld background calls, %ld completions",
		     det_names[d], t.blocked, t.completions);
	cr_expect_gt(t.calls, 1000, "[%s] only %ld calls", det_names[d], t.calls);
	cr_expect_gt(t.blocked, 0, "[%s] no call went to the background", det_names[d]);
	cr_expect_gt(t.cancels, 0, "[%s] no cancel was tried", det_names[d]);
}

Test(stress_small, auto, .timeout = 120)
{
	small(LAIO_DETECT_AUTO);
}

Test(stress_small, upcall, .timeout = 120)
{
	small(LAIO_DETECT_UPCALL);
}

Test(stress_small, probe, .timeout = 120)
{
	small(LAIO_DETECT_PROBE);
}

Test(stress_small, watchdog, .timeout = 120)
{
	small(LAIO_DETECT_WATCHDOG);
}

Test(stress_small, eager, .timeout = 120)
{
	small(LAIO_DETECT_EAGER);
}

Test(stress_small, idle, .timeout = 120)
{
	small(LAIO_DETECT_IDLE);
}
