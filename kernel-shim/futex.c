/* futex.c - the kernel wait primitive, wrapped in one place. */
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <errno.h>
#include <time.h>
#include <sched.h>
#include "ks.h"

/* Sleep while *word == val, until the absolute CLOCK_MONOTONIC time (NULL: forever).
 * 0 when woken (or the value changed), -ETIMEDOUT, -EINTR. Leaves errno alone. */
int ks_futex_wait(uint32_t *word, uint32_t val, const struct timespec *abs_monotonic)
{
	long r = ks_raw_syscall6(SYS_futex, (long)word, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG,
				 val, (long)abs_monotonic, 0, FUTEX_BITSET_MATCH_ANY);
	if (r == -EAGAIN)
		return 0;
	return (int)r;
}

void ks_futex_wake(uint32_t *word, int n)
{
	ks_raw_syscall6(SYS_futex, (long)word, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, n, 0, 0, 0);
}

uint64_t ks_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Spinning for a wakeup only helps if the waker can run on another CPU meanwhile: a thread
 * pinned to one CPU (with its wakers) must sleep at once. The count of CPUs online is read
 * once: glibc opens a file in /sys for it, and every activation born would otherwise hold a
 * number of the program's descriptor table for a moment (EMFILE to the program at a full
 * table). */
bool ks_may_spin(void)
{
	static long online;
	cpu_set_t set;
	long n = __atomic_load_n(&online, __ATOMIC_RELAXED);
	if (n == 0) {
		n = sysconf(_SC_NPROCESSORS_ONLN);
		__atomic_store_n(&online, n, __ATOMIC_RELAXED);
	}
	if (sched_getaffinity(0, sizeof set, &set) != 0)
		return false;
	return CPU_COUNT(&set) > 1 && n > 1;
}

void ks_spin_pause(void)
{
	__builtin_ia32_pause();
}
