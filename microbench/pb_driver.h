/*
 * pb_driver.h - what the pipebench driver (pipebench.c) and its report (pb_report.c) share: the
 * variant table, the options, and the per (mode, variant) results of the rounds.
 */
#ifndef PB_DRIVER_H
#define PB_DRIVER_H

#include "pipebench.h"

#define MAX_ROUNDS 100
#define PB_MAX_VARIANTS 16

enum vkind { V_RAW, V_NB, V_AIO, V_URING, V_POOL, V_LAIO };

struct variant {
	const char *name;
	enum vkind kind;
	int detector; /* V_LAIO: enum laio_detector */
	const char *what;
};

/* Per (mode, variant): what the rounds produced. */
struct agg {
	int state; /* 0 not run, 1 ran, -1 skipped, -2 failed */
	char skip[256];
	int nr;
	double per_read[MAX_ROUNDS];  /* the round's median ns per read (over reads or batches) */
	double per_mean[MAX_ROUNDS];  /* the round's mean: elapsed / n */
	double lat_p99[MAX_ROUNDS];   /* the round's p99 (per read in EMPTY, per batch in FULL) */
	unsigned long reads, eagain, calls, blocked, missed_warm, missed_timed;
	int discarded; /* rounds thrown away: a missed block stalled their timed reads */
	char detector[32];
	double med, min, max, p10, p90, mean, lp99;
};

struct opts {
	int rounds;
	long n_full, n_empty;
	int quick;
	int modes; /* bit 0 full, bit 1 empty */
	int reader_cpu, writer_cpu;
	int pool_threads;
	char outdir[4096];
	char csv[4096];
	char png[4096];
	char gp[4096];
	char summary[4096]; /* "": no summary file */
	char bars[4096];    /* "": the bars on stdout only */
	int no_png;
	char only[1024];
};

extern const struct variant pb_variants[];
extern const int pb_nvar;
extern struct agg pb_aggs[2][PB_MAX_VARIANTS]; /* [mode][variant] */

const char *pb_mode_name(int mode);
int pb_find_variant(const char *name);               /* index in pb_variants, or -1 */
void pb_summarize(struct agg *a);                    /* medians and spread over rounds */
void pb_print_table(const struct opts *o, int mode); /* one mode's table on stdout */
/* the paper's ratios beside ours, with the machine and the sources of the paper's figures */
void pb_print_comparison(FILE *f, const struct mb_sysinfo *si);
void pb_write_summary(const struct opts *o, const struct mb_sysinfo *si); /* the same, to a file */
/* laio-auto's empty-pipe LAIO / AIO and (reader unpinned) full-pipe LAIO / raw beside their bars */
void pb_write_bars(const struct opts *o, const struct mb_sysinfo *si);
void pb_write_csv(const struct opts *o, const struct mb_sysinfo *si);
/* runs gnuplot on the CSV; the machine goes into the picture */
void pb_make_png(const struct opts *o, const struct mb_sysinfo *si);

#endif
