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
#define CTX_RBX 0
#define CTX_RBP 8
#define CTX_R12 16
#define CTX_R13 24
#define CTX_R14 32
#define CTX_R15 40
#define CTX_RSP 48
#define CTX_RIP 56
#define CTX_MXCSR 64
#define CTX_FPUCW 68

	.text

/* long rt_ctx_switch(struct sa_context *save, const struct sa_context *load, long value)
 * Save the caller in `save`, continue `load`. The call that saved `load` returns `value`;
 * this call returns whatever value `save` is resumed with later. */
	.globl	rt_ctx_switch
	.hidden	rt_ctx_switch
	.type	rt_ctx_switch, @function
rt_ctx_switch:
	.cfi_startproc
	movq	%rbx, CTX_RBX(%rdi)
	movq	%rbp, CTX_RBP(%rdi)
	movq	%r12, CTX_R12(%rdi)
	movq	%r13, CTX_R13(%rdi)
	movq	%r14, CTX_R14(%rdi)
	movq	%r15, CTX_R15(%rdi)
	movq	(%rsp), %rax			/* resume at our return address ... */
	movq	%rax, CTX_RIP(%rdi)
	leaq	8(%rsp), %rax			/* ... with the stack as after a return */
	movq	%rax, CTX_RSP(%rdi)
	stmxcsr	CTX_MXCSR(%rdi)
	fnstcw	CTX_FPUCW(%rdi)
	/* `save` is complete. It is published (put on a run queue, a lock released) only by the
	   code that runs next, after this switch: see finish_switch() in sched.c. */
	ldmxcsr	CTX_MXCSR(%rsi)
	fldcw	CTX_FPUCW(%rsi)
	movq	CTX_RBX(%rsi), %rbx
	movq	CTX_RBP(%rsi), %rbp
	movq	CTX_R12(%rsi), %r12
	movq	CTX_R13(%rsi), %r13
	movq	CTX_R14(%rsi), %r14
	movq	CTX_R15(%rsi), %r15
	movq	CTX_RSP(%rsi), %rsp
	movq	%rdx, %rax
	jmpq	*CTX_RIP(%rsi)
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
	movq	%rbx, CTX_RBX(%rdi)
	movq	%rbp, CTX_RBP(%rdi)
	movq	%r12, CTX_R12(%rdi)
	movq	%r13, CTX_R13(%rdi)
	movq	%r14, CTX_R14(%rdi)
	movq	%r15, CTX_R15(%rdi)
	movq	(%rsp), %rax
	movq	%rax, CTX_RIP(%rdi)
	leaq	8(%rsp), %rax
	movq	%rax, CTX_RSP(%rdi)
	stmxcsr	CTX_MXCSR(%rdi)
	fnstcw	CTX_FPUCW(%rdi)
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
