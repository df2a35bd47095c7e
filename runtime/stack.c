/*
 * stack.c - user thread stacks: mmap'ed, with a PROT_NONE guard page below, so that an
 * overflow faults (SIGSEGV) instead of overwriting a neighbour. Stacks are pooled with their
 * thread structures (thread.c) and never unmapped while the process runs.
 */
#include <sys/mman.h>
#include <errno.h>
#include <unistd.h>
#include "rt-internal.h"

static size_t page_size(void)
{
	static size_t ps;
	if (!ps)
		ps = (size_t)sysconf(_SC_PAGESIZE);
	return ps;
}

size_t rt_page_round(size_t n)
{
	size_t ps = page_size();
	return (n + ps - 1) & ~(ps - 1);
}

/* A stack of at least `size` usable bytes. 0 or an errno value. */
int rt_stack_alloc(struct rt_stack *s, size_t size)
{
	size_t ps = page_size();
	size = rt_page_round(size);
	/* MAP_NORESERVE: 10,000 stacks of 256 KiB are address space, not memory, until touched */
	char *p = mmap(NULL, size + ps, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
	if (p == MAP_FAILED)
		return errno;
	if (mprotect(p, ps, PROT_NONE) != 0) {
		int e = errno;
		munmap(p, size + ps);
		return e;
	}
	s->base = p;
	s->lo = p + ps;
	s->size = size;
	return 0;
}

void rt_stack_free(struct rt_stack *s)
{
	if (s->base)
		munmap(s->base, s->size + page_size());
	s->base = s->lo = NULL;
}
