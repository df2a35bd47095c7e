/*
 * san.h - telling AddressSanitizer and ThreadSanitizer about user-level context switches.
 *
 * Without sanitizers every function here is empty. With them:
 *  - ThreadSanitizer keeps a "fiber" (its per-thread state: clock, shadow call stack) per
 *    user thread, and one for each VP's scheduler context (the upcall stack). The runtime
 *    switches fiber as the very last step before it loads a context, in the function that
 *    loads it: a function that returned between the two would pop its frame from the next
 *    thread's shadow stack. Hence always_inline here, and rt_ctx_start() in assembly rather
 *    than sa_save_and_run() for leaving a thread for the idle loop. Upcalls enter with frames
 *    that never return: the scheduler context's fiber is made afresh at each upcall, so its
 *    shadow stack stays short. sa_switch_to() (noreturn) is not instrumented, so a thread it
 *    resumes keeps no entry of it.
 *  - AddressSanitizer is told which stack is in use after every switch (a start/finish pair,
 *    __sanitizer_start_switch_fiber), so that __asan_handle_no_return and its reports use the
 *    right bounds; a recycled stack is unpoisoned before it is used again.
 *  - The run queues are liburcu queues whose atomics are inline asm that ThreadSanitizer does
 *    not see; rt_san_release()/rt_san_acquire() give it the happens-before edge instead.
 */
#ifndef RT_SAN_H
#define RT_SAN_H

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define RT_ASAN 1
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(__SANITIZE_THREAD__)
#define RT_TSAN 1
#include <sanitizer/tsan_interface.h>
#endif

struct rt_san_fiber {
#ifdef RT_TSAN
	void *fiber;
#endif
	char unused;
};

/* A fresh TSan fiber for a new user thread or scheduler context; `f` may hold an old one. */
static inline __attribute__((always_inline)) void rt_san_fiber_new(struct rt_san_fiber *f)
{
#ifdef RT_TSAN
	f->fiber = __tsan_create_fiber(0);
#endif
	(void)f;
}

/* Remember the context running now (a VP's kernel thread before it starts scheduling). */
static inline __attribute__((always_inline)) void rt_san_fiber_current(struct rt_san_fiber *f)
{
#ifdef RT_TSAN
	f->fiber = __tsan_get_current_fiber();
#endif
	(void)f;
}

static inline __attribute__((always_inline)) void rt_san_fiber_free(struct rt_san_fiber *f)
{
#ifdef RT_TSAN
	if (f->fiber)
		__tsan_destroy_fiber(f->fiber);
	f->fiber = NULL;
#endif
	(void)f;
}

/* Immediately before loading a context that belongs to `f`. */
static inline __attribute__((always_inline)) void rt_san_switch_to(struct rt_san_fiber *f)
{
#ifdef RT_TSAN
	__tsan_switch_to_fiber(f->fiber, 0);
#endif
	(void)f;
}

/* The scheduler context of a VP that just got an upcall: a fresh fiber (see above). */
static inline __attribute__((always_inline)) void rt_san_upcall_enter(struct rt_san_fiber *f)
{
#ifdef RT_TSAN
	void *old = f->fiber;
	f->fiber = __tsan_create_fiber(0);
	__tsan_switch_to_fiber(f->fiber, 0);
	if (old)
		__tsan_destroy_fiber(old);
#endif
	(void)f;
}

/* Now running on the stack [bottom, bottom + size). */
static inline __attribute__((always_inline)) void rt_san_on_stack(const void *bottom, size_t size)
{
#ifdef RT_ASAN
	void *fake = NULL;
	__sanitizer_start_switch_fiber(&fake, bottom, size);
	__sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
	(void)bottom;
	(void)size;
}

static inline __attribute__((always_inline)) void rt_san_unpoison(void *p, size_t n)
{
#ifdef RT_ASAN
	ASAN_UNPOISON_MEMORY_REGION(p, n);
#endif
	(void)p;
	(void)n;
}

/* Happens-before through a liburcu queue: release before the enqueue, acquire after the
 * dequeue, on the node's address. */
static inline __attribute__((always_inline)) void rt_san_release(void *addr)
{
#ifdef RT_TSAN
	__tsan_release(addr);
#endif
	(void)addr;
}

static inline __attribute__((always_inline)) void rt_san_acquire(void *addr)
{
#ifdef RT_TSAN
	__tsan_acquire(addr);
#endif
	(void)addr;
}

#endif
