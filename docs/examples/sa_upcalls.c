/*
 * sa_upcalls.c - the scheduler-activations interface (sa.h) alone: one call that blocks, the two
 * upcalls it causes, and where each kernel thread is at every step.
 *
 *   make examples && build/docs/examples/sa_upcalls [auto|idle|upcall|probe|watchdog|eager]
 *
 * (the detector may also come from LAIO_DETECTOR). The main thread becomes a virtual processor
 * (VP) and reads an empty pipe through sa_syscall(). The read blocks, so the "kernel" upcalls
 * SA_BLOCKED; the handler resumes the caller with EINPROGRESS while the read waits. The flow
 * then parks the VP with sa_release(); another thread fills the pipe, the read finishes, and the
 * "kernel" upcalls SA_UNBLOCKED with the finished thread mailbox and its result.
 * docs/teaching.md follows the same call through every layer.
 */
#include <dirent.h>
#include <errno.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <pthread.h>
#include "sa.h"

static struct sa_mailbox mb;          /* the VP (kse_mailbox) */
static struct sa_thr_mailbox tm[2];   /* flows of control (kse_thr_mailbox): 0 blocks, 1 goes on */
static char upcall_stack[64 * 1024];  /* upcalls run here, never on the caller's stack */
static struct sa_context after_release; /* where the UNBLOCKED upcall resumes the flow */
static struct sa_thr_mailbox *finished;  /* what the UNBLOCKED upcall reported */
static int pipe_fd[2];
static char buf[16];                  /* the read's buffer */
static sem_t go;                      /* the flow tells the filler when to write */

static const char *names[] = { "auto", "upcall", "probe", "watchdog", "eager", "idle" };

static long tid(void) { return syscall(SYS_gettid); }

/* The upcall handler: the "kernel" calls it on a fresh kernel thread or on the VP's own. It must
 * not return (its caller's stack is gone); it ends by loading a saved context. */
static void upcall(struct sa_mailbox *m, struct sa_upcall *u)
{
	if (u->sa_event == SA_BLOCKED) {
		/* A moved call never blocked: probe and eager hand it to a spare before it waits,
		   and the flow's own activation upcalls. Only when the VP moved did an activation
		   block, as Anderson et al. define the event. */
		if (u->sa_moved)
			printf("2. upcall SA_BLOCKED on kernel thread %ld: thread mailbox %d's call was "
			       "moved to a spare before it could block\n", tid(),
			       (int)(u->sa_blocked - tm));
		else
			printf("2. upcall SA_BLOCKED on kernel thread %ld: thread mailbox %d blocked in "
			       "its call\n", tid(), (int)(u->sa_blocked - tm));
		/* What the "kernel" says about it: which detector caught the block, which way the
		   hand-off went, and which kernel thread executes the call now. */
		printf("   the %s detector caught it; %s; the call runs on kernel thread %d\n",
		       names[u->sa_detector], u->sa_moved ? "the call was moved" : "the VP was moved",
		       u->sa_call_tid);
		/* Mailbox 0 stays with the read. The flow goes on as mailbox 1, from the context
		   the trap saved in mailbox 0, and sa_syscall() returns -EINPROGRESS there. */
		sa_switch_to(m, &tm[1], &u->sa_blocked->tm_context, -EINPROGRESS);
	}
	for (struct sa_thr_mailbox *t = u->sa_done; t; t = t->tm_link) {
		printf("5. upcall SA_UNBLOCKED on kernel thread %ld: thread mailbox %d finished: read "
		       "returned %ld (errno %d)\n", tid(), (int)(t - tm), t->tm_retval, t->tm_errno);
		finished = t;
	}
	sa_switch_to(m, NULL, &after_release, 1); /* NULL: no upcalls until we ask again */
}

/* Another pthread (not a VP): the data the read waits for. */
static void *filler(void *arg)
{
	(void)arg;
	sem_wait(&go);
	struct timespec ms20 = { 0, 20 * 1000 * 1000 };
	nanosleep(&ms20, NULL); /* by now the VP sleeps in sa_release() */
	printf("   another thread writes \"hello\" into the pipe\n");
	if (write(pipe_fd[1], "hello", 5) != 5)
		abort();
	return NULL;
}

/* Which kernel thread of this process is inside read(..., buf, ...) now? Asked of the real
 * kernel, to check what the upcall said. The kernel says so in
 * /proc/self/task/TID/syscall ("0 0x3 0x55... ...": the call's number, then its arguments; the
 * buffer, not the descriptor: a moved call reads a duplicate of it). */
static long thread_in_read(void)
{
	for (int tries = 0; tries < 1000; tries++) { /* a moved call may not have started yet */
		DIR *d = opendir("/proc/self/task");
		struct dirent *e;
		long found = -1;
		while (d && found < 0 && (e = readdir(d))) {
			char path[300];
			long nr, fd, to;
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof path, "/proc/self/task/%s/syscall", e->d_name);
			FILE *f = fopen(path, "r");
			if (f && fscanf(f, "%ld %lx %lx", &nr, &fd, &to) == 3 && nr == SYS_read &&
			    to == (long)buf)
				found = atol(e->d_name);
			if (f)
				fclose(f);
		}
		if (d)
			closedir(d);
		if (found >= 0)
			return found;
		usleep(1000);
	}
	return -1;
}

static void release(void *arg) { sa_release(arg, NULL); } /* never returns: it upcalls */

int main(int argc, char **argv)
{
	const char *want = argc > 1 ? argv[1] : getenv("LAIO_DETECTOR");
	int det = 0, ok;
	if (!want)
		want = "auto";
	while (det < SA_DETECT_COUNT && strcmp(names[det], want))
		det++;
	const char *why = "no such detector";
	if (det == SA_DETECT_COUNT || !sa_detector_available(det, &why)) {
		printf("detector %s is not available here: %s\n", want, why);
		return 77;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (pipe(pipe_fd) < 0 || sem_init(&go, 0, 0) < 0)
		return 1;
	pthread_t writer;
	pthread_create(&writer, NULL, filler, NULL);

	/* Make this thread a VP (kse_create): no upcall yet. */
	mb.sa_func = upcall;
	mb.sa_stack = upcall_stack;
	mb.sa_stacksize = sizeof upcall_stack;
	mb.sa_notify_fd = -1;
	if (sa_create(&mb) < 0 || sa_set_detector(&mb, det) < 0)
		return 1;
	sa_thr_init(&tm[0]);
	sa_thr_init(&tm[1]);
	printf("detector for read: %s\n", sa_detector_name(&mb, SYS_read));

	/* Upcalls on for this flow (km_curthread = its mailbox), then the call. */
	long before = tid();
	__atomic_store_n(&mb.sa_curthread, &tm[0], __ATOMIC_RELEASE); /* detectors read it */
	printf("1. flow on kernel thread %ld: sa_syscall(SYS_read) on an empty pipe\n", before);
	long r = sa_syscall(SYS_read, pipe_fd[0], (long)buf, sizeof buf - 1, 0, 0, 0);
	/* upcalls off until a call that may block again (the flow goes on as mailbox 1) */
	__atomic_store_n(&mb.sa_curthread, NULL, __ATOMIC_RELAXED);
	if (r != -1 || errno != EINPROGRESS) {
		printf("the read did not block: %ld\n", r);
		return 1;
	}
	long now = tid(), reader = thread_in_read();
	printf("3. flow on kernel thread %ld: sa_syscall returned -1, errno EINPROGRESS\n", now);
	printf("   the read is running on kernel thread %ld: %s\n", reader,
	       now != before ? "the VP moved to a new activation, the call stayed"
			     : "the call moved to a spare activation, the VP stayed");

	/* Nothing else to run: give the processor back (kse_release). sa_release() does not
	   return, so save where to continue first; the UNBLOCKED upcall resumes it here. */
	printf("4. flow: nothing to run, sa_release() parks the VP\n");
	sem_post(&go);
	sa_save_and_run(&after_release, release, &mb, upcall_stack + sizeof upcall_stack);

	ok = finished == &tm[0] && finished->tm_retval == 5 && strcmp(buf, "hello") == 0;
	printf("6. flow on kernel thread %ld: the buffer holds \"%s\": %s\n", tid(), buf,
	       ok ? "correct" : "WRONG");
	pthread_join(writer, NULL);
	return ok ? 0 : 1;
}
