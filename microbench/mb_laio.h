/* mb_laio.h - what the benchmarks that call LAIO share (mb_common.c is also linked into a
 * pipebench built without the library). */
#ifndef MB_LAIO_H
#define MB_LAIO_H
#include <errno.h>
#include "laio.h"
#include "mb_common.h"

/* The next completion: laio_poll() until it reports one (a timeout-free poll returns 0 only
 * when a signal woke it); anything else ends the benchmark. */
static inline void mb_poll_one(struct laio_completion *comp)
{
	int k;
	do
		k = laio_poll(comp, 1, NULL);
	while (k == 0 || (k == -1 && errno == EINTR));
	if (k != 1)
		mb_die("laio_poll returned %d", k);
}
#endif
