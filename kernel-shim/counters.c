/* counters.c - the shim's process-wide counters (struct ks_counters), counted with relaxed
 * atomic increments where the event happens and read whole for sa_counters(). */
#include "ks.h"

struct ks_counters ks_stat;

void ks_counters_read(struct ks_counters *out)
{
	const unsigned long *from = (const unsigned long *)&ks_stat;
	unsigned long *to = (unsigned long *)out;
	for (size_t i = 0; i < sizeof ks_stat / sizeof *from; i++)
		to[i] = __atomic_load_n(&from[i], __ATOMIC_RELAXED);
}
