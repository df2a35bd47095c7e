/*
 * kick.c - the words through which the trap reaches a sleeping detector thread.
 *
 * ks_kick[cpu] holds bit (1 << detector id) while that detector wants to hear of a call made on
 * `cpu`: its thread sleeps and would not see the call otherwise. The trap loads the word of its
 * runner's CPU after T1 (one plain load) and, if it is not zero, calls ks_trap_kick (detect.c),
 * which calls the detectors' kick. A detector sets its bit, then pays a membarrier, then looks
 * at the calls in progress once more before it sleeps: either it sees the trap's T1 store, or
 * the trap's load sees its bit (an asymmetric Dekker pattern; docs/protocol.md, I2 and W2).
 */
#include <unistd.h>
#include "ks.h"

uint32_t ks_kick[KS_MAXCPU] __attribute__((aligned(64)));

static int ncpu(void)
{
	static int n;
	if (!n) {
		long c = sysconf(_SC_NPROCESSORS_CONF);
		n = c < 1 ? 1 : c > KS_MAXCPU - 1 ? KS_MAXCPU - 1 : (int)c;
	}
	return n;
}

/* Set or clear detector `id`'s bit for every CPU (and for the slot of a runner whose CPU is
 * unknown: rseq's cpu_id -1 indexes the last word). */
static void set(uint32_t *word, uint32_t bit, bool on)
{
	if (on)
		__atomic_fetch_or(word, bit, __ATOMIC_SEQ_CST);
	else
		__atomic_fetch_and(word, ~bit, __ATOMIC_SEQ_CST);
}

void ks_kick_set_all(int id, bool on)
{
	int n = ncpu();
	for (int c = 0; c < n; c++)
		set(&ks_kick[c], 1u << id, on);
	set(&ks_kick[KS_MAXCPU - 1], 1u << id, on);
}
