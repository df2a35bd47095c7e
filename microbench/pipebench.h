/*
 * pipebench.h - the pipe microbenchmark's variants and the context they run in.
 *
 * A variant reads one byte from ctx->rfd ctx->warm + ctx->n times and reports the time of the
 * last ctx->n reads. In PB_EMPTY mode, every read is issued on an empty pipe; once it has been
 * issued, the variant calls pb_kick(), which asks the writer process to write one byte, and then
 * waits for the completion its own way. See README.md, "The EMPTY protocol".
 */
#ifndef PIPEBENCH_H
#define PIPEBENCH_H

#include <stdint.h>

#include "mb_common.h"

enum pb_mode { PB_FULL = 0, PB_EMPTY = 1 };

struct pb_ctx {
	enum pb_mode mode;
	long n;            /* timed reads */
	long warm;         /* untimed reads before them */
	int rfd;           /* the read end: prefilled (FULL) or shared with the writer (EMPTY) */
	int pool_threads;  /* helper threads of the pool variant */
	long batch;        /* reads per timed batch: 1 in EMPTY mode (every read), 100 in FULL */
	double *lat;       /* ns per read of each batch, n / batch entries */
	struct mb_watch *watch;
	const char *label; /* "full laio-probe", for the watchdog */
};

struct pb_result {
	int ran;                  /* 0: skipped, see skip_reason */
	char skip_reason[256];
	uint64_t elapsed_ns;      /* the n timed reads */
	size_t nbatch;            /* entries stored in ctx->lat */
	/* what the variant saw (over the timed reads only) */
	unsigned long eagain;     /* NB: reads that returned EAGAIN */
	unsigned long calls;      /* LAIO: laio_stats() calls */
	unsigned long blocked;    /* LAIO: laio_stats() blocked (returned EINPROGRESS) */
	/* LAIO in EMPTY mode: reads that completed synchronously. Nobody writes before the kick,
	 * so each one is a block the detector missed, released by the watchdog after 1 s. */
	unsigned long missed_warm, missed_timed;
	int failed;               /* stopped early: too many missed blocks (skip_reason says) */
	char detector[32];        /* LAIO: laio_detector_name(SYS_read) */
};

/* A run stops (and the variant is marked FAILED) after this many missed blocks. */
#define PB_MAX_MISSED 3

/* One byte to the writer: "write one byte into the data pipe". */
void pb_kick(const struct pb_ctx *ctx);

/* Progress for the watchdog (a relaxed store: one mov). */
static inline void pb_step(const struct pb_ctx *ctx, long i)
{
	atomic_store_explicit(&ctx->watch->progress, (unsigned long)i, memory_order_relaxed);
}

/*
 * The loop every variant uses: warm + n iterations of the body (the last arguments; `i` is the
 * index). At i == warm, RESET runs (zero the counters) and the clock starts. From then on, every
 * ctx->batch reads the time per read of that batch is stored in ctx->lat[] (one plain counter
 * decrement per read; the clock is read once per batch). res->elapsed_ns covers the n timed reads
 * and res->nbatch says how many batches were stored. A `break` in the body ends the run early.
 */
#define PB_LOOP(ctx, res, RESET, ...)                                                    \
	do {                                                                             \
		uint64_t t0_ = 0, tb_ = 0;                                               \
		long total_ = (ctx)->warm + (ctx)->n, left_ = 0;                         \
		size_t nb_ = 0;                                                          \
		for (long i = 0; i < total_; i++) {                                      \
			if (i == (ctx)->warm) {                                          \
				RESET;                                                   \
				t0_ = tb_ = mb_now_ns();                                 \
				left_ = (ctx)->batch;                                    \
			}                                                                \
			__VA_ARGS__                                                      \
			if (--left_ == 0) {                                              \
				uint64_t t_ = mb_now_ns();                               \
				(ctx)->lat[nb_++] = (double)(t_ - tb_) / (ctx)->batch;   \
				tb_ = t_;                                                \
				left_ = (ctx)->batch;                                    \
			}                                                                \
		}                                                                        \
		(res)->elapsed_ns = mb_now_ns() - t0_;                                   \
		(res)->nbatch = nb_;                                                     \
	} while (0)

/* A read that did not return the one byte it should have: report and exit. */
__attribute__((noreturn)) void pb_bad_read(const char *what, const struct pb_ctx *ctx, long i,
					  long ret, int err);

/* Classic variants (pb_classic.c). */
void pb_run_raw(const struct pb_ctx *ctx, struct pb_result *res);
void pb_run_nb(const struct pb_ctx *ctx, struct pb_result *res);
void pb_run_aio(const struct pb_ctx *ctx, struct pb_result *res);
void pb_run_uring(const struct pb_ctx *ctx, struct pb_result *res);
void pb_run_pool(const struct pb_ctx *ctx, struct pb_result *res);

/* LAIO, one detector per call, in a fresh thread (pb_laio.c). `detector` is enum laio_detector. */
void pb_run_laio(const struct pb_ctx *ctx, struct pb_result *res, int detector);

#endif
