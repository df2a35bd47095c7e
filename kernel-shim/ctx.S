/*
 * ctx.S - the shim's lowest layer in assembly (x86-64, System V): a raw system call that leaves
 * errno alone, wearing a TLS block, and saving, resuming and abandoning contexts and stacks.
 * Nothing here knows of virtual processors or activations.
 */
#include "ks-offsets.h"

	.data
/* FSGSBASE instructions may be used (tls.c sets it once, before any VP exists) */
	.globl	ks_have_fsgsbase
	.hidden	ks_have_fsgsbase
	.type	ks_have_fsgsbase, @object
ks_have_fsgsbase:
	.byte	0
	.size	ks_have_fsgsbase, 1

	.text

/* void ks_wrfs(uint64_t base): wear another TLS block. Touches no TLS and no errno. */
	.globl	ks_wrfs
	.hidden	ks_wrfs
	.type	ks_wrfs, @function
ks_wrfs:
	.cfi_startproc
	cmpb	$0, ks_have_fsgsbase(%rip)
	je	1f
	wrfsbase %rdi
	ret
1:	movq	%rdi, %rsi
	movl	$0x1002, %edi			/* ARCH_SET_FS */
	movl	$158, %eax			/* SYS_arch_prctl */
	syscall
	ret
	.cfi_endproc
	.size	ks_wrfs, .-ks_wrfs

/* long ks_save_and_run(struct sa_context *ctx, void (*fn)(void *), void *arg, void *stack_top)
 * Save the caller's context in ctx, then run fn(arg) on stack_top (16-byte aligned). Returns
 * when someone resumes ctx, with the value given to ks_resume. */
	.globl	ks_save_and_run
	.hidden	ks_save_and_run
	.type	ks_save_and_run, @function
ks_save_and_run:
	.cfi_startproc
	CTX_SAVE_CALLER %rdi
	movq	%rcx, %rsp
	movq	%rdx, %rdi
	call	*%rsi
	ud2
	.cfi_endproc
	.size	ks_save_and_run, .-ks_save_and_run

/* void ks_resume(const struct sa_context *ctx, long value): continue ctx; the call that saved
 * it returns value. */
	.globl	ks_resume
	.hidden	ks_resume
	.type	ks_resume, @function
ks_resume:
	.cfi_startproc
	movq	%rsi, %rax
	CTX_RESUME %rdi
	.cfi_endproc
	.size	ks_resume, .-ks_resume

/* void ks_run_on(void *stack_top, void (*fn)(void *), void *arg): abandon this stack. */
	.globl	ks_run_on
	.hidden	ks_run_on
	.type	ks_run_on, @function
ks_run_on:
	.cfi_startproc
	movq	%rdi, %rsp
	movq	%rdx, %rdi
	call	*%rsi
	ud2
	.cfi_endproc
	.size	ks_run_on, .-ks_run_on

/* long ks_raw_syscall6(nr, a1..a6): the raw kernel result, errno untouched. */
	.globl	ks_raw_syscall6
	.hidden	ks_raw_syscall6
	.type	ks_raw_syscall6, @function
ks_raw_syscall6:
	.cfi_startproc
	movq	%rdi, %rax
	movq	%rsi, %rdi
	movq	%rdx, %rsi
	movq	%rcx, %rdx
	movq	%r8, %r10
	movq	%r9, %r8
	movq	8(%rsp), %r9
	syscall
	ret
	.cfi_endproc
	.size	ks_raw_syscall6, .-ks_raw_syscall6

/* long ks_cancellable_syscall(struct sa_thr_mailbox *m): run the moved call in m. If a cancel
 * (tm_cstate >= CANCELLING) came before the kernel was entered, the call does not run: -EINTR.
 * The cancel signal's handler moves a thread caught inside the window to ks_cancel_out. */
	.globl	ks_cancellable_syscall
	.hidden	ks_cancellable_syscall
	.type	ks_cancellable_syscall, @function
ks_cancellable_syscall:
	.cfi_startproc
	movq	%rdi, %rax
	.globl	ks_cancel_window_start
	.hidden	ks_cancel_window_start
ks_cancel_window_start:
	cmpl	$SA_CALL_CANCELLING_V, TM_CSTATE(%rax)
	jae	ks_cancel_out
	movq	TM_ARGS+0(%rax), %rdi
	movq	TM_ARGS+8(%rax), %rsi
	movq	TM_ARGS+16(%rax), %rdx
	movq	TM_ARGS+24(%rax), %r10
	movq	TM_ARGS+32(%rax), %r8
	movq	TM_ARGS+40(%rax), %r9
	movq	TM_NR(%rax), %rax
	syscall
	.globl	ks_cancel_window_end
	.hidden	ks_cancel_window_end
ks_cancel_window_end:
	ret
	.globl	ks_cancel_out
	.hidden	ks_cancel_out
ks_cancel_out:
	movq	$-EINTR_V, %rax
	ret
	.cfi_endproc
	.size	ks_cancellable_syscall, .-ks_cancellable_syscall

	.section .note.GNU-stack,"",@progbits
