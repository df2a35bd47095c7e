/*
 * user.c - a program as a user writes it, built against the installed library with pkg-config
 * alone (test/install-test.sh). It also defines functions named like the library's internals:
 * the library must not call them (only its API is exported).
 */
#include <laio.h>          /* each installed header must stand alone: laio.h first */
#include <laio/sa.h>
#include <laio/rt.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Names the library used to export for its own use. */
void laio_trace(void *ls, const char *fmt, ...);
void laio_trace(void *ls, const char *fmt, ...) { (void)ls; (void)fmt; abort(); }
int ks_claim(void);
int ks_claim(void) { abort(); }
int laio_upcall(void);
int laio_upcall(void) { abort(); }

#if LAIO_VERSION_MAJOR != 0 || LAIO_VERSION_MINOR < 1
#error "unexpected LAIO_VERSION"
#endif

static int pipefd[2];

static void *writer(void *arg)
{
	(void)arg;
	usleep(20000);
	if (write(pipefd[1], "x", 1) != 1)
		abort();
	return NULL;
}

static void *rt_child(void *arg)
{
	long pid = rt_syscall(SYS_getpid);
	return (void *)(intptr_t)(pid == (long)(intptr_t)arg);
}

int main(void)
{
	if (strcmp(LAIO_VERSION, VERSION_FROM_MAKEFILE) != 0) {
		fprintf(stderr, "LAIO_VERSION %s, library %s\n", LAIO_VERSION, VERSION_FROM_MAKEFILE);
		return 1;
	}
	/* a call that does not block: syscall()'s answer */
	if (laio_syscall(SYS_getpid) != getpid())
		return 2;
	/* one that blocks (an empty pipe a thread fills later): EINPROGRESS, then laio_poll */
	char c;
	pthread_t t;
	if (pipe(pipefd) != 0 || pthread_create(&t, NULL, writer, NULL) != 0)
		return 3;
	long n = laio_syscall(SYS_read, pipefd[0], &c, 1);
	if (n == -1 && errno == EINPROGRESS) {
		void *h = laio_gethandle();
		struct laio_completion done[1];
		if (laio_poll(done, 1, NULL) != 1 || done[0].laio_handle != h ||
		    done[0].laio_return_value != 1)
			return 4;
		puts("read went to the background and came back");
	} else if (n != 1) {
		return 5;
	} else {
		puts("read did not block");
	}
	pthread_join(t, NULL);
	/* the runtime and the activation layer link too */
	if (rt_init(1) != 0)
		return 6;
	rt_thread_t *th = rt_spawn(rt_child, (void *)(intptr_t)getpid());
	void *ok = NULL;
	if (!th || rt_join(th, &ok) != 0 || ok != (void *)1 || rt_shutdown() != 0)
		return 7;
	if (sa_call_class(SYS_read) < 0)
		return 8;
	printf("laio %s: C program ok (read: %s detector)\n", LAIO_VERSION, laio_detector_name(SYS_read));
	return 0;
}
