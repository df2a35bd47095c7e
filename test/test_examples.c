/* test_examples.c - the runnable examples under docs/examples build and do what they say. */
#include <sys/wait.h>
#include "test-util.h"

static int run(const char *cmd, char *out, size_t outsz)
{
	FILE *f = popen(cmd, "r");
	cr_assert_not_null(f, "popen %s", cmd);
	size_t n = fread(out, 1, outsz - 1, f);
	out[n] = 0;
	int st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static const char *build(void)
{
	const char *b = getenv("LAIO_BUILD");
	return b ? b : "build";
}

Test(examples, paper_figures_1_and_2)
{
	char cmd[512], out[16384];
	snprintf(cmd, sizeof cmd, "timeout 30 %s/docs/examples/laio_paper", build());
	cr_assert_eq(run(cmd, out, sizeof out), 0, "laio_paper failed:\n%s", out);
	cr_expect(strstr(out, "response 8 sent: 3000 bytes"), "all responses sent:\n%s", out);
	cr_expect(strstr(out, "write blocked"), "some writes went to the background:\n%s", out);
}

Test(examples, trace_shows_the_upcalls)
{
	char cmd[512], out[65536];
	snprintf(cmd, sizeof cmd, "LAIO_TRACE=1 timeout 30 %s/docs/examples/laio_paper 2>&1",
		 build());
	cr_assert_eq(run(cmd, out, sizeof out), 0, "laio_paper failed:\n%s", out);
	cr_expect(strstr(out, "upcall BLOCKED"), "trace shows the blocking upcall");
	cr_expect(strstr(out, "laio_poll reports handle"), "trace shows the report");
}

/* sa_upcalls: the activation interface alone. Both upcalls come, the read's result is right,
 * and after EINPROGRESS the flow and the blocked read are on different kernel threads: the VP
 * moved (idle, upcall, watchdog) or the call did (probe, eager). */
static void sa_upcalls_with(const char *detector, int vp_moves /* 1, 0, -1: either */)
{
	char cmd[512], out[8192];
	long first = -1, flow = -2, reader = -3;
	snprintf(cmd, sizeof cmd, "timeout 30 %s/docs/examples/sa_upcalls %s", build(), detector);
	int rc = run(cmd, out, sizeof out);
	if (rc == 77)
		cr_skip_test("%s", out);
	cr_assert_eq(rc, 0, "sa_upcalls %s failed:\n%s", detector, out);
	const char *p = strstr(out, "1. flow on kernel thread ");
	const char *q = strstr(out, "3. flow on kernel thread ");
	const char *r = strstr(out, "the read is running on kernel thread ");
	cr_assert(p && q && r, "every step printed:\n%s", out);
	sscanf(p, "1. flow on kernel thread %ld", &first);
	sscanf(q, "3. flow on kernel thread %ld", &flow);
	sscanf(r, "the read is running on kernel thread %ld", &reader);
	cr_expect(strstr(out, "2. upcall SA_BLOCKED"), "the BLOCKED upcall:\n%s", out);
	cr_expect(strstr(out, "sa_syscall returned -1, errno EINPROGRESS"), "EINPROGRESS:\n%s", out);
	cr_expect(strstr(out, "5. upcall SA_UNBLOCKED") &&
		  strstr(out, "thread mailbox 0 finished: read returned 5 (errno 0)"),
		  "the UNBLOCKED upcall with the result:\n%s", out);
	cr_expect(strstr(out, "the buffer holds \"hello\": correct"), "the data:\n%s", out);
	cr_expect(reader > 0 && reader != flow, "flow and call on different kernel threads:\n%s", out);
	if (vp_moves == 1)
		cr_expect(flow != first && reader == first, "the VP moved, the call stayed:\n%s", out);
	else if (vp_moves == 0)
		cr_expect(flow == first && reader != first, "the call moved, the VP stayed:\n%s", out);
}

Test(examples, sa_upcalls_auto) { sa_upcalls_with("auto", -1); } /* idle, or probe without rseq */
Test(examples, sa_upcalls_idle) { sa_upcalls_with("idle", 1); }
Test(examples, sa_upcalls_upcall) { sa_upcalls_with("upcall", 1); }
Test(examples, sa_upcalls_watchdog) { sa_upcalls_with("watchdog", 1); }
Test(examples, sa_upcalls_probe) { sa_upcalls_with("probe", 0); }
Test(examples, sa_upcalls_eager) { sa_upcalls_with("eager", 0); }
