/* old_stats.c - a program built against LAIO 0.1, whose struct laio_stats ended with spurious[]
 * and whose struct rt_stats ended with preempt_signals: the library must write no further. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <laio.h>
#include <laio/rt.h>

void laio_stats_01(struct laio_stats *st);
void rt_stats_01(struct rt_stats *st);
__asm__(".symver laio_stats_01, laio_stats@LAIO_0.1");
__asm__(".symver rt_stats_01, rt_stats@LAIO_0.1");

static int untouched(const unsigned char *b, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		if (b[i] != 0xa5)
			return 0;
	return 1;
}

int main(void)
{
	static unsigned char b[sizeof(struct laio_stats) + sizeof(struct rt_stats) + 64];
	memset(b, 0xa5, sizeof b);
	laio_syscall(SYS_getpid);
	laio_stats_01((struct laio_stats *)b);
	size_t end = offsetof(struct laio_stats, sync_inflight);
	if (((struct laio_stats *)b)->calls != 1 || !untouched(b, end, sizeof b)) {
		printf("laio_stats@LAIO_0.1 wrote past the 0.1 structure (%zu bytes)\n", end);
		return 1;
	}
	memset(b, 0xa5, sizeof b);
	rt_stats_01((struct rt_stats *)b);
	end = offsetof(struct rt_stats, preempt_depth);
	if (!untouched(b, end, sizeof b)) {
		printf("rt_stats@LAIO_0.1 wrote past the 0.1 structure (%zu bytes)\n", end);
		return 1;
	}
	printf("0.1 programs: laio_stats and rt_stats fill %zu and %zu bytes\n",
	       offsetof(struct laio_stats, sync_inflight), end);
	return 0;
}
