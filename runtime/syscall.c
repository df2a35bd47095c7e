/*
 * syscall.c - rt_syscall(): any system call from a user thread, through the trap.
 *
 * The running thread is the VP's sa_curthread, so if the call blocks the VP upcalls
 * SA_BLOCKED and runs another thread (upcall.c). When the call completes, the thread's saved
 * context is resumed with the result, possibly on another VP after a steal: sa_syscall()
 * then returns here and sets errno in the TLS of the VP that runs it now.
 *
 * rt_syscall(number, ...) itself is three instructions in syscall_entry.S: on x86-64 the
 * integer arguments of a variadic call travel exactly as those of a fixed one, so it jumps
 * here with all six, passed or not, as glibc's syscall() does. (Reading six with va_arg when
 * fewer were passed would be undefined, and AddressSanitizer says so.)
 *
 * With preemption on, the preemption signal may reach a kernel thread in the middle of a call:
 * the ticker read the runner's id just before the call started, or before the call blocked
 * and went on in the background on the kernel thread it had. The kernel then ends a call it
 * does not restart (nanosleep, poll, ...) with EINTR. Such a failure is not the caller's: the
 * call is made again when a preemption signal was taken anywhere while it ran. (A signal of
 * the program's own that interrupts the call at the same moment is then absorbed, as with
 * SA_RESTART.)
 */
#include <errno.h>
#include <unistd.h>
#include "rt-internal.h"

long rt_syscall6(long number, long a1, long a2, long a3, long a4, long a5, long a6);

long rt_syscall6(long number, long a1, long a2, long a3, long a4, long a5, long a6)
{
	struct rt_vp *vp = rt_vp_self();
	if (!vp || !vp->cur)
		return syscall(number, a1, a2, a3, a4, a5, a6);
	struct rt_thread *self = vp->cur;
	rt_preempt_off(self);
	long r;
	if (__builtin_expect(rt_g.traced, 0)) {
		/* the call's arguments for its BLOCKED line; its start for the timeline */
		const long args[6] = { a1, a2, a3, a4, a5, a6 };
		sa_trace_call_start(&self->tc, number, args, rt_g.tl_file != NULL);
	}
	for (;;) {
		unsigned long kicks = __atomic_load_n(&rt_g.preempt_kicks, __ATOMIC_ACQUIRE);
		self->nr = number;
		r = sa_syscall(number, a1, a2, a3, a4, a5, a6);
		/* if the call blocked, this thread was resumed by a switch, maybe on another VP,
		   and the switch may have work left for finish_switch */
		int e = errno;
		rt_finish_switch(rt_vp_self());
		errno = e;
		if (r != -1 || e != EINTR || !rt_g.quantum_ns ||
		    __atomic_load_n(&rt_g.preempt_kicks, __ATOMIC_ACQUIRE) == kicks)
			break;
	}
	if (__builtin_expect(rt_g.traced, 0)) {
		/* a call that blocked has its span already, from its completion */
		if (!self->tc.hno)
			rt_trace_call(rt_vp_self(), self, r, errno);
		self->tc.hno = 0;
	}
	rt_preempt_on(self); /* keeps errno */
	return r;
}
