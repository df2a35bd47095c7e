/*
 * switch.S - the user-level context switch (x86-64, System V ABI).
 *
 * A context is a struct sa_context (activation/sa.h): the callee-saved registers, the stack
 * pointer and resume address of a call, and the two pieces of floating-point state the ABI
 * says a callee must preserve: the MXCSR (SSE rounding and exception masks) and the x87
 * control word. Everything else is caller-saved, so a switch that looks like a function call
 * to the compiler need not save it. The layout is the one the shim's trap saves, so a thread
 * that blocked in a system call and one that yielded are resumed the same way.
 */
#include "../kernel-shim/ks-offsets.h"

	.text

/* long rt_ctx_switch(struct sa_context *save, const struct sa_context *load, long value)
 * Save the caller in `save`, continue `load`. The call that saved `load` returns `value`;
 * this call returns whatever value `save` is resumed with later. */
	.globl	rt_ctx_switch
	.hidden	rt_ctx_switch
	.type	rt_ctx_switch, @function
rt_ctx_switch:
	.cfi_startproc
	CTX_SAVE_CALLER %rdi
	/* `save` is complete. It is published (put on a run queue, a lock released) only by the
	   code that runs next, after this switch: see finish_switch() in sched.c. */
	movq	%rdx, %rax
	CTX_RESUME %rsi
	.cfi_endproc
	.size	rt_ctx_switch, .-rt_ctx_switch

/* long rt_ctx_start(struct sa_context *save, void (*fn)(void *), void *arg, void *stack_top)
 * Save the caller in `save` like rt_ctx_switch, then call fn(arg) on stack_top (16-byte
 * aligned); fn does not return. Returns the value `save` is resumed with. (The interface's
 * sa_save_and_run() does the same; this one is assembly all through, so that a sanitizer's
 * record of function entries and exits stays with the context that made them.) */
	.globl	rt_ctx_start
	.hidden	rt_ctx_start
	.type	rt_ctx_start, @function
rt_ctx_start:
	.cfi_startproc
	CTX_SAVE_CALLER %rdi
	movq	%rcx, %rsp
	movq	%rdx, %rdi
	call	*%rsi
	ud2
	.cfi_endproc
	.size	rt_ctx_start, .-rt_ctx_start

/* The first instruction of every user thread: its context is set up with rsp = the 16-byte
 * aligned top of its stack and rip = here. No return address above: unwinders stop here. */
	.globl	rt_thread_trampoline
	.hidden	rt_thread_trampoline
	.type	rt_thread_trampoline, @function
rt_thread_trampoline:
	.cfi_startproc
	.cfi_undefined rip
	xorl	%ebp, %ebp
	call	rt_thread_start
	ud2
	.cfi_endproc
	.size	rt_thread_trampoline, .-rt_thread_trampoline

	.section .note.GNU-stack,"",@progbits
