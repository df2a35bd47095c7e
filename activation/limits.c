/* limits.c - see sa-limits.h. */
#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "sa-limits.h"

/* A number from /proc/sys, or 0 if it cannot be read. */
static unsigned long proc_number(const char *path)
{
	char buf[32];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	return strtoul(buf, NULL, 10);
}

/* The kernel does not apply RLIMIT_NPROC to root, CAP_SYS_ADMIN or CAP_SYS_RESOURCE. */
static bool nproc_exempt(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	if (geteuid() == 0)
		return true;
	if (syscall(SYS_capget, &h, d) != 0)
		return false;
	return (d[0].effective & (1u << CAP_SYS_ADMIN)) ||
	       (d[0].effective & (1u << CAP_SYS_RESOURCE));
}

static void tighter(unsigned long *room, const char **which, unsigned long v, const char *name)
{
	if (v && v < *room) {
		*room = v;
		*which = name;
	}
}

unsigned long sa_thread_room(const char **which)
{
	unsigned long room = ULONG_MAX;
	struct rlimit rl;
	*which = "no limit";
	tighter(&room, which, proc_number("/proc/sys/kernel/pid_max"), "pid_max");
	tighter(&room, which, proc_number("/proc/sys/kernel/threads-max"), "threads-max");
	if (!nproc_exempt() && getrlimit(RLIMIT_NPROC, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		tighter(&room, which, (unsigned long)rl.rlim_cur, "RLIMIT_NPROC");
	return room;
}

static int said[SA_LIMIT_COUNT];

void sa_limit_notice(enum sa_limit kind, unsigned long value)
{
	char buf[400];
	int n;
	if ((unsigned)kind >= SA_LIMIT_COUNT || __atomic_exchange_n(&said[kind], 1, __ATOMIC_RELAXED))
		return;
	int saved = errno;
	switch (kind) {
	case SA_LIMIT_INFLIGHT:
		n = snprintf(buf, sizeof buf, "laio: a thread has %lu calls in flight, its limit "
			     "(LAIO_MAX_INFLIGHT or laio_config.max_inflight): its calls that block run "
			     "synchronously until some complete (said once; laio_stats(3) counts them)\n",
			     value);
		break;
	case SA_LIMIT_ACTIVATIONS:
		n = snprintf(buf, sizeof buf, "laio: the process has %lu kernel threads for calls, its "
			     "limit (LAIO_MAX_ACTIVATIONS): calls that block run synchronously while "
			     "none is free (said once; laio_stats(3) counts them)\n", value);
		break;
	default:
		n = snprintf(buf, sizeof buf, "laio: no kernel thread can be created for calls (%s; "
			     "RLIMIT_NPROC, threads-max and pid_max limit them): calls that block run "
			     "synchronously while none is free (said once; laio_stats(3) counts "
			     "them)\n", strerror((int)value));
		break;
	}
	if (n > 0 && write(2, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1) < 0) {
		/* best effort: the program's own output is not ours to disturb */
	}
	errno = saved;
}
