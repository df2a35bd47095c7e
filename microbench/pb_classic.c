/*
 * pb_classic.c - the variants that do not use LAIO: raw blocking read, non-blocking I/O with
 * epoll, glibc POSIX AIO, io_uring, and a helper-thread pool (AMTED).
 *
 * Every variant reads ctx->rfd one byte at a time. In EMPTY mode each calls pb_kick() once the
 * read has been issued (raw read: just before it, since read() blocks) and then waits.
 */
#define _GNU_SOURCE
#include "pipebench.h"

#include <aio.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

/* ---- raw blocking read(2): the floor --------------------------------------------------- */

void pb_run_raw(const struct pb_ctx *ctx, struct pb_result *res)
{
	char c;
	int empty = ctx->mode == PB_EMPTY;
	PB_LOOP(ctx, res, (void)0, {
		pb_step(ctx, i);
		if (empty)
			pb_kick(ctx); /* read() blocks, so the writer is asked first */
		ssize_t r = read(ctx->rfd, &c, 1);
		if (r != 1)
			pb_bad_read("read", ctx, i, r, errno);
	});
	res->ran = 1;
}

/* ---- non-blocking I/O as an event loop does it ------------------------------------------ */

void pb_run_nb(const struct pb_ctx *ctx, struct pb_result *res)
{
	int fl = fcntl(ctx->rfd, F_GETFL);
	MB_CHECK(fl);
	MB_CHECK(fcntl(ctx->rfd, F_SETFL, fl | O_NONBLOCK));
	int ep = epoll_create1(EPOLL_CLOEXEC);
	MB_CHECK(ep);
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = ctx->rfd};
	MB_CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, ctx->rfd, &ev)); /* level-triggered */

	char c;
	int empty = ctx->mode == PB_EMPTY;
	unsigned long eagain = 0;
	PB_LOOP(ctx, res, eagain = 0, {
		pb_step(ctx, i);
		int kicked = 0;
		for (;;) {
			ssize_t r = read(ctx->rfd, &c, 1);
			if (r == 1)
				break;
			if (r == -1 && errno == EAGAIN) {
				eagain++;
				if (empty && !kicked) {
					pb_kick(ctx);
					kicked = 1;
				}
				struct epoll_event out;
				int k = epoll_wait(ep, &out, 1, -1);
				if (k == -1 && errno != EINTR)
					mb_die("epoll_wait");
				continue;
			}
			pb_bad_read("read(O_NONBLOCK)", ctx, i, r, errno);
		}
	});
	res->eagain = eagain;
	MB_CHECK(close(ep));
	MB_CHECK(fcntl(ctx->rfd, F_SETFL, fl));
	res->ran = 1;
}

/* ---- glibc POSIX AIO, the paper's Figure 5 ----------------------------------------------- */

void pb_run_aio(const struct pb_ctx *ctx, struct pb_result *res)
{
	char c;
	int empty = ctx->mode == PB_EMPTY;
	struct aiocb cb;
	const struct aiocb *list[1] = {&cb};
	PB_LOOP(ctx, res, (void)0, {
		pb_step(ctx, i);
		memset(&cb, 0, sizeof cb);
		cb.aio_fildes = ctx->rfd;
		cb.aio_buf = &c;
		cb.aio_nbytes = 1;
		cb.aio_offset = 0; /* glibc tries pread, gets ESPIPE on a pipe, then read()s */
		cb.aio_sigevent.sigev_notify = SIGEV_NONE;
		if (aio_read(&cb) == -1)
			mb_die("aio_read");
		if (empty)
			pb_kick(ctx);
		int err;
		while ((err = aio_error(&cb)) == EINPROGRESS) {
			if (aio_suspend(list, 1, NULL) == -1 && errno != EINTR)
				mb_die("aio_suspend");
		}
		ssize_t r = aio_return(&cb);
		if (err != 0 || r != 1)
			pb_bad_read("aio_read", ctx, i, r, err);
	});
	res->ran = 1;
}

/* ---- io_uring, IORING_OP_READ -------------------------------------------------------------- */

void pb_run_uring(const struct pb_ctx *ctx, struct pb_result *res)
{
	struct io_uring ring;
	int e = io_uring_queue_init(8, &ring, 0);
	if (e < 0) {
		snprintf(res->skip_reason, sizeof res->skip_reason, "io_uring_queue_init: %s",
			 strerror(-e));
		return;
	}
	char c;
	int empty = ctx->mode == PB_EMPTY;
	PB_LOOP(ctx, res, (void)0, {
		pb_step(ctx, i);
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
		if (!sqe)
			mb_fail("io_uring_get_sqe: submission queue full");
		io_uring_prep_read(sqe, ctx->rfd, &c, 1, 0);
		sqe->user_data = (uint64_t)i;
		int s = io_uring_submit(&ring);
		if (s != 1) {
			errno = s < 0 ? -s : EIO;
			mb_die("io_uring_submit returned %d", s);
		}
		if (empty)
			pb_kick(ctx);
		struct io_uring_cqe *cqe;
		do
			e = io_uring_wait_cqe(&ring, &cqe);
		while (e == -EINTR);
		if (e < 0) {
			errno = -e;
			mb_die("io_uring_wait_cqe");
		}
		if (cqe->res != 1 || cqe->user_data != (uint64_t)i)
			pb_bad_read("io_uring read", ctx, i, cqe->res, cqe->res < 0 ? -cqe->res : 0);
		io_uring_cqe_seen(&ring, cqe);
	});
	io_uring_queue_exit(&ring);
	res->ran = 1;
}

/* ---- a helper-thread pool (AMTED): request queue, completion queue, condvars ----------------- */

#define POOL_Q 64          /* ring size; at most one request is outstanding here */
#define POOL_MAX_THREADS 16

struct pool_req {
	int fd;
	void *buf;
	size_t len;
	long id;
};

struct pool_done {
	long id;
	ssize_t ret;
	int err;
};

struct pool {
	pthread_mutex_t mu;
	pthread_cond_t req_cv;  /* requests queued, or stop */
	pthread_cond_t done_cv; /* completions posted */
	struct pool_req req[POOL_Q];
	unsigned req_head, req_tail;
	struct pool_done done[POOL_Q];
	unsigned done_head, done_tail;
	int stop;
	int nthreads;
	pthread_t th[POOL_MAX_THREADS];
};

static void pcheck(int e, const char *what)
{
	if (e) {
		errno = e;
		mb_die("%s", what);
	}
}

static void *pool_worker(void *arg)
{
	struct pool *p = arg;
	pcheck(pthread_mutex_lock(&p->mu), "pthread_mutex_lock");
	for (;;) {
		while (!p->stop && p->req_head == p->req_tail)
			pcheck(pthread_cond_wait(&p->req_cv, &p->mu), "pthread_cond_wait");
		if (p->stop)
			break;
		struct pool_req r = p->req[p->req_head++ % POOL_Q];
		pcheck(pthread_mutex_unlock(&p->mu), "pthread_mutex_unlock");

		ssize_t n = read(r.fd, r.buf, r.len); /* may block: that is what the helper is for */
		int err = n == -1 ? errno : 0;

		pcheck(pthread_mutex_lock(&p->mu), "pthread_mutex_lock");
		if (p->done_tail - p->done_head >= POOL_Q)
			mb_fail("pool: completion queue overflow");
		p->done[p->done_tail++ % POOL_Q] = (struct pool_done){r.id, n, err};
		pcheck(pthread_cond_signal(&p->done_cv), "pthread_cond_signal");
	}
	pcheck(pthread_mutex_unlock(&p->mu), "pthread_mutex_unlock");
	return NULL;
}

static void pool_submit(struct pool *p, struct pool_req r)
{
	pcheck(pthread_mutex_lock(&p->mu), "pthread_mutex_lock");
	if (p->req_tail - p->req_head >= POOL_Q)
		mb_fail("pool: request queue overflow");
	p->req[p->req_tail++ % POOL_Q] = r;
	pcheck(pthread_cond_signal(&p->req_cv), "pthread_cond_signal");
	pcheck(pthread_mutex_unlock(&p->mu), "pthread_mutex_unlock");
}

static struct pool_done pool_wait(struct pool *p)
{
	pcheck(pthread_mutex_lock(&p->mu), "pthread_mutex_lock");
	while (p->done_head == p->done_tail)
		pcheck(pthread_cond_wait(&p->done_cv, &p->mu), "pthread_cond_wait");
	struct pool_done d = p->done[p->done_head++ % POOL_Q];
	pcheck(pthread_mutex_unlock(&p->mu), "pthread_mutex_unlock");
	return d;
}

void pb_run_pool(const struct pb_ctx *ctx, struct pb_result *res)
{
	static struct pool p; /* one run at a time */
	memset(&p, 0, sizeof p);
	pcheck(pthread_mutex_init(&p.mu, NULL), "pthread_mutex_init");
	pcheck(pthread_cond_init(&p.req_cv, NULL), "pthread_cond_init");
	pcheck(pthread_cond_init(&p.done_cv, NULL), "pthread_cond_init");
	p.nthreads = ctx->pool_threads;
	if (p.nthreads < 1 || p.nthreads > POOL_MAX_THREADS)
		mb_fail("pool: %d threads (1..%d)", p.nthreads, POOL_MAX_THREADS);
	/* The workers inherit the caller's CPU affinity (CPU 0 by default). */
	for (int t = 0; t < p.nthreads; t++)
		pcheck(pthread_create(&p.th[t], NULL, pool_worker, &p), "pthread_create(pool)");

	char c;
	int empty = ctx->mode == PB_EMPTY;
	PB_LOOP(ctx, res, (void)0, {
		pb_step(ctx, i);
		pool_submit(&p, (struct pool_req){ctx->rfd, &c, 1, i});
		if (empty)
			pb_kick(ctx);
		struct pool_done d = pool_wait(&p);
		if (d.ret != 1 || d.id != i)
			pb_bad_read("pool read", ctx, i, d.ret, d.err);
	});

	pcheck(pthread_mutex_lock(&p.mu), "pthread_mutex_lock");
	p.stop = 1;
	pcheck(pthread_cond_broadcast(&p.req_cv), "pthread_cond_broadcast");
	pcheck(pthread_mutex_unlock(&p.mu), "pthread_mutex_unlock");
	for (int t = 0; t < p.nthreads; t++)
		pcheck(pthread_join(p.th[t], NULL), "pthread_join(pool)");
	pthread_cond_destroy(&p.req_cv);
	pthread_cond_destroy(&p.done_cv);
	pthread_mutex_destroy(&p.mu);
	res->ran = 1;
}
