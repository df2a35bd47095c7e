/* test_examples.c - the runnable examples under docs/examples build and do what they say. */
#include <sys/wait.h>
#include <ctype.h>
#include <stdbool.h>
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
	cr_expect(strstr(out, "laio_poll reports h1"), "trace shows the report");
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
	/* the upcall's sa_call_tid against the kernel's own /proc answer */
	const char *s = strstr(out, "the call runs on kernel thread ");
	long said = -1;
	cr_assert(s, "the upcall's account of the call:\n%s", out);
	sscanf(s, "the call runs on kernel thread %ld", &said);
	cr_expect_eq(said, reader, "sa_call_tid names the thread in read():\n%s", out);
	/* only an activation that blocked is said to have blocked; a moved call never did */
	bool moved = strstr(out, "the call was moved") != NULL;
	cr_expect(moved == (strstr(out, "moved to a spare before it could block") != NULL) &&
		  moved == !strstr(out, "blocked in its call"),
		  "SA_BLOCKED described as the hand-off happened:\n%s", out);
	if (vp_moves == 1)
		cr_expect(flow != first && reader == first, "the VP moved, the call stayed:\n%s", out);
	else if (vp_moves == 0)
		cr_expect(flow == first && reader != first && moved,
			  "the call moved, the VP stayed:\n%s", out);
}

Test(examples, sa_upcalls_auto) { sa_upcalls_with("auto", -1); } /* idle, or probe without rseq */
Test(examples, sa_upcalls_idle) { sa_upcalls_with("idle", 1); }
Test(examples, sa_upcalls_upcall) { sa_upcalls_with("upcall", 1); }
Test(examples, sa_upcalls_watchdog) { sa_upcalls_with("watchdog", 1); }
Test(examples, sa_upcalls_probe) { sa_upcalls_with("probe", 0); }
Test(examples, sa_upcalls_eager) { sa_upcalls_with("eager", 0); }

/* ---- the trace format (docs/tracing.md) ---- */

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f, "the timeline %s was written", path);
	static char buf[1 << 20];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = 0;
	fclose(f);
	cr_assert_lt(n, sizeof buf - 1, "timeline fits the test's buffer");
	return buf;
}

/* A JSON well-formedness check (RFC 8259 grammar, no semantics): enough to tell that
 * Perfetto's and chrome://tracing's readers will take the file. */
static const char *js_ws(const char *p)
{
	while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
		p++;
	return p;
}

static const char *js_value(const char *p, int depth);

static const char *js_string(const char *p)
{
	if (*p++ != '"')
		return NULL;
	while (*p != '"') {
		if ((unsigned char)*p < 0x20)
			return NULL;
		if (*p == '\\') {
			p++;
			if (*p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (!isxdigit((unsigned char)p[i]))
						return NULL;
				p += 4;
			} else if (!strchr("\"\\/bfnrt", *p)) {
				return NULL;
			}
		}
		p++;
	}
	return p + 1;
}

static const char *js_number(const char *p)
{
	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (isdigit((unsigned char)*p))
		while (isdigit((unsigned char)*p))
			p++;
	else
		return NULL;
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return NULL;
		while (isdigit((unsigned char)*p))
			p++;
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!isdigit((unsigned char)*p))
			return NULL;
		while (isdigit((unsigned char)*p))
			p++;
	}
	return p;
}

static const char *js_list(const char *p, char close, int depth, bool keys)
{
	p = js_ws(p + 1);
	if (*p == close)
		return p + 1;
	for (;;) {
		if (keys) {
			if (!(p = js_string(js_ws(p))))
				return NULL;
			p = js_ws(p);
			if (*p++ != ':')
				return NULL;
		}
		if (!(p = js_value(p, depth + 1)))
			return NULL;
		p = js_ws(p);
		if (*p == close)
			return p + 1;
		if (*p++ != ',')
			return NULL;
	}
}

static const char *js_value(const char *p, int depth)
{
	if (depth > 64)
		return NULL;
	p = js_ws(p);
	switch (*p) {
	case '{': return js_list(p, '}', depth, true);
	case '[': return js_list(p, ']', depth, false);
	case '"': return js_string(p);
	case 't': return strncmp(p, "true", 4) ? NULL : p + 4;
	case 'f': return strncmp(p, "false", 5) ? NULL : p + 5;
	case 'n': return strncmp(p, "null", 4) ? NULL : p + 4;
	}
	return js_number(p);
}

static bool json_valid(const char *s)
{
	const char *end = js_value(s, 0);
	return end && *js_ws(end) == 0;
}

Test(trace, the_json_checker_can_fail)
{
	cr_expect(json_valid("{\"traceEvents\":[{\"a\":1.5,\"b\":[\"x\",-2]}]}"));
	cr_expect(!json_valid("{\"traceEvents\":[{\"a\":1,}]}"), "trailing comma");
	cr_expect(!json_valid("{\"traceEvents\":[{\"a\":1}"), "unterminated");
	cr_expect(!json_valid("{\"a\":0x1}"), "hex is not JSON");
}

static int count(const char *s, const char *what)
{
	int n = 0;
	for (const char *p = s; (p = strstr(p, what)); p += strlen(what))
		n++;
	return n;
}

/* A flow arrow whose start and finish are both in the file (one event per line). */
static long flow_id(const char *event)
{
	const char *id = strstr(event, "\"id\":"), *eol = strchr(event, '\n');
	return id && (!eol || id < eol) ? strtol(id + 5, NULL, 10) : -1;
}

static bool has_flow_pair(const char *json)
{
	for (const char *p = json; (p = strstr(p, "{\"ph\":\"s\"")); p++)
		for (const char *q = json; (q = strstr(q, "{\"ph\":\"f\"")); q++)
			if (flow_id(p) >= 0 && flow_id(p) == flow_id(q))
				return true;
	return false;
}

Test(trace, lines_name_calls_handles_and_the_hand_off)
{
	char cmd[512], out[65536];
	snprintf(cmd, sizeof cmd, "LAIO_TRACE=1 timeout 30 %s/docs/examples/laio_paper 2>&1",
		 build());
	cr_assert_eq(run(cmd, out, sizeof out), 0, "laio_paper failed:\n%s", out);
	cr_expect(strstr(out, "laio vp0  kt "), "the common prefix:\n%s", out);
	cr_expect(strstr(out, "upcall BLOCKED: write("), "the call by name:\n%s", out);
	cr_expect(strstr(out, " is h1 in the background"), "small handle numbers:\n%s", out);
	cr_expect(strstr(out, "laio_poll reports h1: write = 3000"), "the report:\n%s", out);
	cr_expect(strstr(out, " caught it: "), "the detector:\n%s", out);
	cr_expect(strstr(out, "VP moved to a spare") || strstr(out, "call moved to kt"),
		  "the direction:\n%s", out);
	cr_expect(!strstr(out, "handle 0x") && !strstr(out, "system call 1 "),
		  "no addresses or numbers for handles and calls:\n%s", out);
	cr_expect(strstr(out, "detector auto: "), "the configured detector:\n%s", out);
	cr_expect(!strstr(out, "detector for read"), "no claim about a call it never makes");
}

Test(trace, eager_moves_the_call)
{
	char cmd[512], out[65536];
	snprintf(cmd, sizeof cmd,
		 "LAIO_DETECTOR=eager LAIO_TRACE=1 timeout 30 %s/docs/examples/laio_paper 2>&1",
		 build());
	cr_assert_eq(run(cmd, out, sizeof out), 0, "laio_paper failed:\n%s", out);
	cr_expect(strstr(out, "detector eager"), "%s", out);
	cr_expect(strstr(out, "eager caught it: call moved to kt "), "%s", out);
}

/* With stdout a pipe, stdio would hold the program's lines until exit, after every trace
 * line; tracing makes stdout line-buffered. The order checked is causal: the BLOCKED upcall
 * happens before laio_syscall() returns EINPROGRESS and the program says so, which happens
 * before laio_poll() reports that handle; the last report before the summary. */
Test(trace, piped_output_keeps_its_place_among_trace_lines)
{
	char cmd[512], out[65536];
	snprintf(cmd, sizeof cmd, "LAIO_TRACE=1 timeout 30 %s/docs/examples/laio_paper 2>&1 | cat",
		 build());
	cr_assert_eq(run(cmd, out, sizeof out), 0, "laio_paper failed:\n%s", out);
	const char *blocked = strstr(out, "is h1 in the background");
	const char *said = strstr(out, "write blocked: continuing");
	const char *summary = strstr(out, " calls, ");
	const char *last_report = NULL;
	for (const char *p = out; (p = strstr(p, "laio_poll reports h")); p++)
		last_report = p;
	cr_assert(blocked && said && summary && last_report, "%s", out);
	cr_expect(blocked < said, "the upcall's line before the program's reaction:\n%s", out);
	/* a fully buffered stdout would put the program's line after every trace line */
	cr_expect(said < strstr(out, "laio_poll reports h1"),
		  "the program's line before the report that follows it:\n%s", out);
	cr_expect(last_report < summary, "the program's last line after the last report:\n%s",
		  out);
}

Test(trace, laio_timeline_is_valid_json_with_spans_upcalls_and_flows)
{
	char path[] = "/tmp/laio-timeline-XXXXXX", cmd[1024], out[16384];
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	close(fd);
	snprintf(cmd, sizeof cmd, "LAIO_TRACE_FILE=%s timeout 30 %s/docs/examples/laio_paper 2>&1",
		 path, build());
	cr_assert_eq(run(cmd, out, sizeof out), 0, "laio_paper failed:\n%s", out);
	char *json = slurp(path);
	unlink(path);
	cr_expect(strncmp(json, "{\"traceEvents\":[", 16) == 0, "the object form");
	cr_expect(json_valid(json), "well-formed JSON:\n%s", json);
	/* one span per laio_syscall(): the example makes 8 writes */
	cr_expect_eq(count(json, "\"ph\":\"X\",\"cat\":\"laio\",\"name\":\"write\""), 8, "%s", json);
	cr_expect(strstr(json, "\"name\":\"laio_poll\""), "laio_poll() spans");
	cr_expect(strstr(json, "\"name\":\"upcall BLOCKED\""), "BLOCKED instants");
	cr_expect(strstr(json, "\"name\":\"upcall UNBLOCKED\""), "UNBLOCKED instants");
	cr_expect(strstr(json, "\"handle\":\"h1\",\"detector\":\""), "detector in args");
	cr_expect(strstr(json, "\"direction\":\""), "direction in args");
	cr_expect(strstr(json, "\"name\":\"thread_name\""), "tracks are named");
	cr_expect(has_flow_pair(json), "a flow from the blocked call:\n%s", json);
}

Test(trace, runtime_timeline)
{
	char path[] = "/tmp/rt-timeline-XXXXXX", cmd[1024], out[65536];
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	close(fd);
	snprintf(cmd, sizeof cmd, "RT_TRACE_FILE=%s timeout 30 %s/docs/examples/rt_upcalls 2>&1",
		 path, build());
	cr_assert_eq(run(cmd, out, sizeof out), 0, "rt_upcalls failed:\n%s", out);
	char *json = slurp(path);
	unlink(path);
	cr_expect(json_valid(json), "well-formed JSON:\n%s", json);
	cr_expect_eq(count(json, "\"ph\":\"X\",\"cat\":\"rt\",\"name\":\"nanosleep\""), 3,
		     "a span per sleep:\n%s", json);
	cr_expect_eq(count(json, "\"name\":\"upcall BLOCKED\""), 3, "%s", json);
	cr_expect(strstr(json, "\"thread\":"), "user thread ids");
	cr_expect(has_flow_pair(json), "a flow from a blocked call:\n%s", json);
	cr_expect(strstr(out, "rt vp0  kt "), "the same line format:\n%s", out);
	cr_expect(strstr(out, "blocked in nanosleep("), "calls by name:\n%s", out);
}
