/* disk_amted.c - NB-AMTED (Flash's AMPED with threads): helper threads do open, fstat and
 * pread; completions come back to the event loop through an eventfd. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "server.h"

extern int amted_threads;

struct job {
	struct conn *c;
	int is_open;
	long result;   /* fd or bytes */
	int err;
	struct stat st;
	struct job *next;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct job *todo_head, *todo_tail, *done_head;
static int efd = -1;
static unsigned long calls;

static void *helper(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&mu);
		while (!todo_head)
			pthread_cond_wait(&cv, &mu);
		struct job *j = todo_head;
		todo_head = j->next;
		if (!todo_head)
			todo_tail = NULL;
		pthread_mutex_unlock(&mu);

		struct conn *c = j->c;
		if (j->is_open) {
			int fd = openat(root_fd, c->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
			j->err = 0;
			if (fd < 0 || fstat(fd, &j->st) < 0) {
				j->err = errno;
				if (fd >= 0)
					close(fd);
				fd = -1;
			}
			j->result = fd;
		} else {
			ssize_t n = pread(c->file_fd, c->buf, CHUNK, c->file_off);
			j->result = n;
			j->err = n < 0 ? errno : 0;
		}
		pthread_mutex_lock(&mu);
		int was_empty = done_head == NULL;
		j->next = done_head;
		done_head = j;
		pthread_mutex_unlock(&mu);
		if (was_empty) {
			uint64_t one = 1;
			if (write(efd, &one, sizeof one) < 0)
				abort();
		}
	}
	return NULL;
}

static int amted_init(void)
{
	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	for (int i = 0; i < amted_threads; i++) {
		pthread_t t;
		pthread_create(&t, NULL, helper, NULL);
		pthread_detach(t);
	}
	return efd;
}

static void submit(struct conn *c, int is_open)
{
	struct job *j = malloc(sizeof *j);
	if (!j)
		abort();
	j->c = c;
	j->is_open = is_open;
	j->next = NULL;
	calls += is_open ? 2 : 1;
	pthread_mutex_lock(&mu);
	if (todo_tail)
		todo_tail->next = j;
	else
		todo_head = j;
	todo_tail = j;
	pthread_cond_signal(&cv);
	pthread_mutex_unlock(&mu);
}

static void amted_open(struct conn *c) { submit(c, 1); }
static void amted_read(struct conn *c) { submit(c, 0); }

static void amted_event(void)
{
	uint64_t v;
	if (read(efd, &v, sizeof v) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&mu);
	struct job *j = done_head;
	done_head = NULL;
	pthread_mutex_unlock(&mu);
	while (j) {
		struct job *next = j->next;
		if (j->is_open)
			conn_open_done(j->c, (int)j->result, j->err, j->result >= 0 ? &j->st : NULL);
		else
			conn_read_done(j->c, j->result, j->err);
		free(j);
		j = next;
	}
}

static void amted_report(void)
{
	printf("stats arch=NB-AMTED disk_calls=%lu disk_blocked=n/a threads=%d\n", calls, amted_threads);
}

const struct disk_ops disk_amted = { "NB-AMTED", amted_init, amted_open, amted_read, amted_event, amted_report };
