/*
 * sa-valgrind.h - the stacks memcheck must know of: activations' own stacks, upcall stacks,
 * user-level threads' stacks.
 *
 * Memcheck takes a move of the stack pointer by less than 2 MB (--max-stackframe) for frames
 * pushed or popped: it marks the bytes in between undefined, or inaccessible. The shim's moves
 * between an activation's own stack, a VP's upcall stack and a user thread's stack are
 * switches, not frames, and such stacks often lie within 2 MB of each other (neighbouring
 * mappings). A move into another registered stack is taken for a switch, and nothing is
 * marked. A client request is a few register instructions when the program does not run
 * under valgrind. Built without <valgrind/valgrind.h> (Debian: package valgrind), nothing is
 * registered, and memcheck reports the shim's live frames as uninitialised.
 */
#ifndef SA_VALGRIND_H
#define SA_VALGRIND_H
#include <stddef.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define SA_HAVE_VALGRIND 1
#endif
#endif

/* [lo, lo + size) is a stack: an id for sa_vg_stack_forget (0 without valgrind.h) */
static inline unsigned sa_vg_stack_register(void *lo, size_t size)
{
#ifdef SA_HAVE_VALGRIND
	return VALGRIND_STACK_REGISTER(lo, (char *)lo + size - 1); /* its highest byte */
#else
	(void)lo;
	(void)size;
	return 0;
#endif
}

/* The stack of that id is no stack any more (unmapped, or freed). */
static inline void sa_vg_stack_forget(unsigned id)
{
#ifdef SA_HAVE_VALGRIND
	VALGRIND_STACK_DEREGISTER(id);
#endif
	(void)id;
}

#endif
