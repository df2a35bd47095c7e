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
