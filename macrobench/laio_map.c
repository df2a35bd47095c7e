/* laio_map.c - handle -> continuation map for the LAIO architectures, and the exit report. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "laio.h"
#include "server.h"

#define NB 4096
struct node {
	void *h;
	struct conn *c;
	int kind;
	struct node *next;
};
static struct node *bucket[NB], *spare;
unsigned long disk_calls, disk_blocked;
unsigned long kind_calls[K_CLOSE + 1], kind_blocked[K_CLOSE + 1];

static unsigned hash(void *h) { return (unsigned)(((uintptr_t)h >> 4) * 2654435761u) % NB; }

void pending_put(void *handle, struct conn *c, int kind)
{
	struct node *n = spare;
	if (n)
		spare = n->next;
	else if (!(n = malloc(sizeof *n)))
		abort();
	n->h = handle;
	n->c = c;
	n->kind = kind;
	unsigned b = hash(handle);
	n->next = bucket[b];
	bucket[b] = n;
}

struct conn *pending_take(void *handle, int *kind)
{
	for (struct node **p = &bucket[hash(handle)]; *p; p = &(*p)->next) {
		if ((*p)->h == handle) {
			struct node *n = *p;
			*p = n->next;
			*kind = n->kind;
			struct conn *c = n->c;
			n->next = spare;
			spare = n;
			return c;
		}
	}
	return NULL;
}

void print_laio_stats(const char *arch)
{
	struct laio_stats s;
	laio_stats(&s);
	printf("stats arch=%s disk_calls=%lu disk_blocked=%lu blocked_share=%.4f laio_calls=%lu"
	       " laio_blocked=%lu peak_in_flight=%lu sync_at_limit=%lu detector=%s\n",
	       arch, disk_calls, disk_blocked, disk_calls ? (double)disk_blocked / (double)disk_calls : 0.0,
	       s.calls, s.blocked, s.peak_in_flight, s.sync_at_limit, laio_detector_name(0));
	/* where the background calls came from: each is a hand-off and a completion */
	static const char *const kind[K_CLOSE + 1] = { "other", "accept", "recv", "send", "open",
						       "fstat", "read", "close" };
	printf("background");
	for (int k = 0; k <= K_CLOSE; k++)
		if (kind_calls[k])
			printf(" %s=%lu/%lu", kind[k], kind_blocked[k], kind_calls[k]);
	static const char *const det[LAIO_DETECT_COUNT] = { "auto", "upcall", "probe", "watchdog",
							    "eager", "idle" };
	printf(" handoffs");
	for (int d = 0; d < LAIO_DETECT_COUNT; d++)
		if (s.handoffs[d] || s.spurious[d])
			printf(" %s=%lu(spurious %lu)", det[d], s.handoffs[d], s.spurious[d]);
	printf("\n");
}
