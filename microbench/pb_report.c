/*
 * pb_report.c - pipebench's results: medians over rounds, ratios within the run, the tables,
 * the paper's ratios beside ours, the CSV and the gnuplot PNG.
 */
#define _GNU_SOURCE
#include "pb_driver.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int pb_find_variant(const char *name)
{
	for (int v = 0; v < pb_nvar; v++)
		if (!strcmp(pb_variants[v].name, name))
			return v;
	return -1;
}

void pb_summarize(struct agg *a)
{
	if (a->state == 1 && a->nr == 0) {
		a->state = -2;
		snprintf(a->skip, sizeof a->skip,
			 "FAILED: every round was discarded, %lu blocks missed by the %s detector",
			 a->missed_warm + a->missed_timed, a->detector);
	}
	if (a->state != 1)
		return;
	double s[MAX_ROUNDS];
	memcpy(s, a->per_read, sizeof(double) * (size_t)a->nr);
	mb_sort(s, (size_t)a->nr);
	a->med = mb_pct_sorted(s, (size_t)a->nr, 50);
	a->min = s[0];
	a->max = s[a->nr - 1];
	a->p10 = mb_pct_sorted(s, (size_t)a->nr, 10);
	a->p90 = mb_pct_sorted(s, (size_t)a->nr, 90);
	memcpy(s, a->per_mean, sizeof(double) * (size_t)a->nr);
	mb_sort(s, (size_t)a->nr);
	a->mean = mb_pct_sorted(s, (size_t)a->nr, 50);
	memcpy(s, a->lat_p99, sizeof(double) * (size_t)a->nr);
	mb_sort(s, (size_t)a->nr);
	a->lp99 = mb_pct_sorted(s, (size_t)a->nr, 50);
}

/* Median of `base` in this mode, or 0 if it did not run. */
static double base_med(int mode, const char *base)
{
	int v = pb_find_variant(base);
	return v >= 0 && pb_aggs[mode][v].state == 1 ? pb_aggs[mode][v].med : 0.0;
}

static double ratio(int mode, int v, const char *base)
{
	double b = base_med(mode, base);
	return b > 0 && pb_aggs[mode][v].state == 1 ? pb_aggs[mode][v].med / b : 0.0;
}

/*
 * The paper's own table of section 7 is not at hand; its ratios are known from two other
 * sources, named wherever they are printed: a talk about the paper given by a third party
 * (Anirban Sinha, University of British Columbia), which reports LAIO 1.4 times slower than
 * non-blocking I/O on a full pipe, AIO slower still, and LAIO 1.08 times slower than AIO on an
 * empty one; and the abstract of Elmeleegy's MS thesis (Rice, 2004), which puts LAIO at more
 * than 3 times faster than AIO with the data in memory. The paper measured one LAIO, the
 * library as a program gets it: laio-auto here. The other detectors are this project's.
 */
#define PAPER_LAIO "laio-auto"

static const char *paper_col(int mode, int v)
{
	const struct variant *var = &pb_variants[v];
	bool laio = !strcmp(var->name, PAPER_LAIO);
	if (mode == PB_FULL) {
		if (var->kind == V_NB)
			return "1 (base)";
		if (laio)
			return "1.4 x NB (talk)";
		if (var->kind == V_AIO)
			return "> LAIO (talk), >3x (thesis)";
	} else {
		if (var->kind == V_AIO)
			return "1 (base)";
		if (laio)
			return "1.08 x AIO (talk)";
	}
	return "-";
}

static void fmt_ratio(double r, char *buf, size_t len)
{
	if (r > 0)
		snprintf(buf, len, "%.2f", r);
	else
		snprintf(buf, len, "-");
}

void pb_print_table(const struct opts *o, int mode)
{
	long n = mode == PB_FULL ? o->n_full : o->n_empty;
	int us = mode == PB_EMPTY;
	double div = us ? 1e3 : 1.0;
	const char *u = us ? "us" : "ns";
	printf("\n== %s: %s ==\n", mode == PB_FULL ? "PIPE FULL" : "PIPE EMPTY",
	       mode == PB_FULL ? "pre-filled, enlarged pipe; no read blocks"
			       : "every read is issued on an empty pipe, then the writer process "
				 "writes one byte");
	printf("   N = %ld timed reads per run (after %s warm-up reads), %d rounds. A run's value is "
	       "the median of %s;\n   %s/read = median over rounds of it, spread = min-max over "
	       "rounds, mean = median over rounds of the run's total time / N.\n",
	       n, mode == PB_FULL ? "min(N/10,1000)" : "20", o->rounds,
	       mode == PB_FULL ? "its 100-read batches' time per read" : "its per-read times", u);
	printf("%-14s %9s/read  %-17s %9s %6s %6s %6s %7s  %-27s %s\n", "variant", u,
	       us ? "spread (us)" : "spread (ns)", "mean", "x raw", "x NB", "x AIO", "x uring",
	       "paper", "notes");
	for (int v = 0; v < pb_nvar; v++) {
		struct agg *a = &pb_aggs[mode][v];
		if (a->state == 0)
			continue;
		if (a->state < 0) {
			printf("%-14s %14s  %s%s\n", pb_variants[v].name, "-",
			       a->state == -1 ? "skipped: " : "", a->skip);
			continue;
		}
		char sp[40], mean[24], r1[16], r2[16], r3[16], r4[16], notes[200] = "";
		snprintf(sp, sizeof sp, us ? "%.1f-%.1f" : "%.0f-%.0f", a->min / div, a->max / div);
		snprintf(mean, sizeof mean, us ? "%.1f" : "%.0f", a->mean / div);
		fmt_ratio(ratio(mode, v, "raw-read"), r1, sizeof r1);
		fmt_ratio(ratio(mode, v, "nb-epoll"), r2, sizeof r2);
		fmt_ratio(ratio(mode, v, "posix-aio"), r3, sizeof r3);
		fmt_ratio(ratio(mode, v, "io_uring"), r4, sizeof r4);
		if (pb_variants[v].kind == V_LAIO) {
			snprintf(notes, sizeof notes, "detector %s, blocked %.1f%%", a->detector,
				 a->calls ? 100.0 * (double)a->blocked / (double)a->calls : 0.0);
			if (a->missed_warm + a->missed_timed)
				snprintf(notes + strlen(notes), sizeof notes - strlen(notes),
					 ", MISSED %lu blocks, %d of %d rounds discarded",
					 a->missed_warm + a->missed_timed, a->discarded, o->rounds);
		} else if (pb_variants[v].kind == V_NB) {
			snprintf(notes, sizeof notes, "EAGAIN %.1f%%",
				 100.0 * (double)a->eagain / (double)a->reads);
		} else if (pb_variants[v].kind == V_POOL) {
			snprintf(notes, sizeof notes, "%d helper threads", o->pool_threads);
		}
		if (mode == PB_EMPTY)
			snprintf(notes + strlen(notes), sizeof notes - strlen(notes),
				 "%sp99 %.0f us", notes[0] ? "; " : "", a->lp99 / 1e3);
		printf("%-14s %14.*f  %-17s %9s %6s %6s %6s %7s  %-27s %s\n", pb_variants[v].name,
		       us ? 2 : 0, a->med / div, sp, mean, r1, r2, r3, r4, paper_col(mode, v), notes);
	}
}

static int col_width(int v)
{
	int w = (int)strlen(pb_variants[v].name);
	return w > 8 ? w : 8;
}

/* One row of the comparison: a ratio of this run for each LAIO variant that ran. */
static void comparison_row(FILE *f, const char *what, const char *paper, int mode,
			   const char *base, bool inverse)
{
	fprintf(f, "%-24s %-26s", what, paper);
	for (int v = 0; v < pb_nvar; v++) {
		if (pb_variants[v].kind != V_LAIO ||
		    pb_aggs[PB_FULL][v].state + pb_aggs[PB_EMPTY][v].state == 0)
			continue;
		double r = ratio(mode, v, base);
		char t[16];
		fmt_ratio(inverse && r > 0 ? 1.0 / r : r, t, sizeof t);
		fprintf(f, " %*s", col_width(v), t);
	}
	fputc('\n', f);
}

/* The paper's claims next to ours, computed from this run's medians. */
void pb_print_comparison(FILE *f, const struct mb_sysinfo *si)
{
	char m[512];
	fprintf(f, "\n== the paper's ratios beside ours (this run's medians) ==\n");
	fprintf(f, "machine: %s\n", mb_sysinfo_line(si, m, sizeof m));
	fprintf(f, "%-24s %-26s", "ratio", "paper");
	int any = 0;
	for (int v = 0; v < pb_nvar; v++)
		if (pb_variants[v].kind == V_LAIO &&
		    pb_aggs[PB_FULL][v].state + pb_aggs[PB_EMPTY][v].state != 0) {
			fprintf(f, " %*s", col_width(v), pb_variants[v].name);
			any = 1;
		}
	fputc('\n', f);
	if (!any) {
		fprintf(f, "(no LAIO variant ran)\n");
		return;
	}
	comparison_row(f, "pipe full:  LAIO / NB", "1.4 (talk)", PB_FULL, "nb-epoll", false);
	comparison_row(f, "pipe full:  AIO / LAIO", "> 1 (talk), > 3 (thesis)", PB_FULL,
		       "posix-aio", true);
	comparison_row(f, "pipe empty: LAIO / AIO", "1.08 (talk)", PB_EMPTY, "posix-aio", false);
	fprintf(f, "paper: the paper's LAIO, on FreeBSD 5 KSE, is " PAPER_LAIO " here; the other "
		   "detectors are this project's (laio-eager an ablation), never measured there.\n"
		   "talk: a talk about the paper by a third party (Anirban Sinha, UBC) reporting its "
		   "section 7; thesis: the abstract of Elmeleegy's MS thesis (Rice, 2004).\n");
}

void pb_write_summary(const struct opts *o, const struct mb_sysinfo *si)
{
	if (!o->summary[0])
		return;
	FILE *f = fopen(o->summary, "w");
	if (!f)
		mb_die("fopen %s", o->summary);
	pb_print_comparison(f, si);
	if (fclose(f) == EOF)
		mb_die("fclose %s", o->summary);
}

/*
 * The bars the notice must meet, for the library as a program gets it: with the writer in another
 * process, LAIO no slower than POSIX AIO on an empty pipe (goal 0.9), pinned and unpinned; and,
 * unpinned, within 5% of a raw read on a full pipe (the price of a call that does not block).
 */
void pb_write_bars(const struct opts *o, const struct mb_sysinfo *si)
{
	int v = pb_find_variant(PAPER_LAIO);
	if (v < 0 || pb_aggs[PB_FULL][v].state + pb_aggs[PB_EMPTY][v].state == 0)
		return;
	printf("\n== laio-auto beside its bars ==\n");
	char rc[32], wc[32], fig[160], val[32];
	snprintf(fig, sizeof fig, "pipebench: empty pipe, LAIO / POSIX AIO (reader %s, writer %s)",
		 mb_cpu_str(o->reader_cpu, rc, sizeof rc), mb_cpu_str(o->writer_cpu, wc, sizeof wc));
	double r = ratio(PB_EMPTY, v, "posix-aio");
	if (r > 0) {
		snprintf(val, sizeof val, "%.2f", r);
		mb_bar(o->bars, si, fig, val, "<= 1.0 (goal 0.9)", r <= 1.0);
	}
	r = ratio(PB_FULL, v, "raw-read");
	if (r > 0 && o->reader_cpu < 0) {
		snprintf(fig, sizeof fig, "pipebench: full pipe, LAIO / raw read (reader unpinned)");
		snprintf(val, sizeof val, "%.2f", r);
		mb_bar(o->bars, si, fig, val, "<= 1.05", r <= 1.05);
	}
}

static void csv_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

void pb_write_csv(const struct opts *o, const struct mb_sysinfo *si)
{
	FILE *f = fopen(o->csv, "w");
	if (!f)
		mb_die("fopen %s", o->csv);
	fprintf(f, "mode,variant,idx,status,n,rounds,median_ns,min_ns,max_ns,p10_ns,p90_ns,"
		   "mean_ns,ratio_raw,ratio_nb,ratio_aio,ratio_uring,paper,detector,blocked_share,"
		   "eagain_share,missed_blocks,discarded_rounds,within_p99_ns,reader_cpu,writer_cpu,"
		   "pool_threads,root,perf_event_paranoid,kernel,cpu_model,note\n");
	char rc[32], wc[32];
	mb_cpu_str(o->reader_cpu, rc, sizeof rc);
	mb_cpu_str(o->writer_cpu, wc, sizeof wc);
	for (int m = 0; m < 2; m++) {
		for (int v = 0; v < pb_nvar; v++) {
			struct agg *a = &pb_aggs[m][v];
			if (a->state == 0)
				continue;
			fprintf(f, "%s,%s,%d,%s,%ld,%d,", pb_mode_name(m), pb_variants[v].name, v,
				a->state == 1 ? "ok" : a->state == -1 ? "skipped" : "failed", m == PB_FULL ? o->n_full : o->n_empty,
				a->nr);
			if (a->state == 1) {
				fprintf(f, "%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.4f,%.4f,%.4f,%.4f,",
					a->med, a->min, a->max, a->p10, a->p90, a->mean,
					ratio(m, v, "raw-read"),
					ratio(m, v, "nb-epoll"), ratio(m, v, "posix-aio"),
					ratio(m, v, "io_uring"));
			} else {
				fprintf(f, ",,,,,,,,,,");
			}
			csv_str(f, paper_col(m, v));
			fprintf(f, ",%s,", a->detector);
			if (pb_variants[v].kind == V_LAIO && a->calls)
				fprintf(f, "%.4f", (double)a->blocked / (double)a->calls);
			fputc(',', f);
			if (pb_variants[v].kind == V_NB && a->reads)
				fprintf(f, "%.4f", (double)a->eagain / (double)a->reads);
			fprintf(f, ",%lu,%d,", a->missed_warm + a->missed_timed, a->discarded);
			if (a->state == 1)
				fprintf(f, "%.1f", a->lp99);
			fprintf(f, ",%s,%s,%d,%s,%s,", rc, wc, o->pool_threads,
				si->root ? "yes" : "no", si->paranoid);
			csv_str(f, si->kernel);
			fputc(',', f);
			csv_str(f, si->cpu_model);
			fputc(',', f);
			csv_str(f, a->state < 0 ? a->skip : "");
			fputc('\n', f);
		}
	}
	if (fclose(f) == EOF)
		mb_die("fclose %s", o->csv);
	printf("\nCSV: %s\n", o->csv);
}

void pb_make_png(const struct opts *o, const struct mb_sysinfo *si)
{
	if (o->no_png)
		return;
	if (access(o->gp, R_OK) == -1) {
		printf("PNG: not made: gnuplot script %s: %s\n", o->gp, strerror(errno));
		return;
	}
	fflush(stdout);
	pid_t pid = fork();
	MB_CHECK(pid);
	if (pid == 0) {
		char e[9000], m[512];
		mb_sysinfo_line(si, m, sizeof m);
		for (char *q = m; *q; q++)
			if (*q == '\'' || *q == '"')
				*q = ' '; /* the string goes inside gnuplot quotes */
		snprintf(e, sizeof e, "csv='%s'; out='%s'; machine='%s'", o->csv, o->png, m);
		execlp("gnuplot", "gnuplot", "-e", e, o->gp, (char *)NULL);
		perror("exec gnuplot");
		_exit(127);
	}
	int st;
	MB_CHECK(waitpid(pid, &st, 0));
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		printf("PNG: %s\n", o->png);
	else
		printf("PNG: gnuplot failed (status %d), no plot\n", st);
}
