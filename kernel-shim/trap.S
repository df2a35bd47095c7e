/*
 * trap.S - the syscall trap and the context primitives of the shim (x86-64, System V).
 *
 * ks_trap is what a real kernel's syscall entry does for scheduler activations: save the user
 * context where an upcall can find it, say "in a system call" (tm_sys odd), run the call on
 * a stack the activation owns, and on return decide who owns the virtual processor. The steps
 * T0-T6 are those of docs/protocol.md. The fast path (call did not block, nobody claimed it) is
 * plain loads and stores: no locked instruction, no system call besides the call itself.
 */
#include "ks-offsets.h"

	.text

/* The system call's arguments (all in caller-saved registers) around a call into C or the
 * kernel on the trap's rare paths; six pushes keep the own stack 16-byte aligned for a call. */
.macro SAVE_ARGS
	pushq	%rdi
	pushq	%rsi
	pushq	%rdx
	pushq	%rcx
	pushq	%r8
	pushq	%r9
.endm
.macro RESTORE_ARGS
	popq	%r9
	popq	%r8
	popq	%rcx
	popq	%rdx
	popq	%rsi
	popq	%rdi
.endm

/* long ks_trap(long nr, long a1, long a2, long a3, long a4, long a5, long a6)
 * Returns the kernel's raw result (-errno on error), or the value an upcall handler resumed
 * the saved context with. */
	.globl	ks_trap
	.hidden	ks_trap
	.type	ks_trap, @function
ks_trap:
	.cfi_startproc
	movq	ks_self_mb@gottpoff(%rip), %rax
	movq	%fs:(%rax), %rax		/* mb: the VP this TLS belongs to */
	movq	SA_CURTHREAD(%rax), %r10	/* m */
	movq	SA_VP(%rax), %r11		/* vp */
	/* T0: the caller's context, resumable by another activation */
	CTX_SAVE_CALLER %r10
	movq	8(%rsp), %r15			/* a6 */
	movq	%r10, %r13			/* r13 = m */
	movq	%r11, %r14			/* r14 = vp */
	/* Leave the user's stack before T1: once tm_sys is odd a claimer may win and resume the
	   user's context on that stack, so nothing of this activation may live there any more,
	   not even a signal frame. */
	movq	VP_KSTACK(%r11), %rbp		/* rbp = this activation's own stack (stable: no
						   claim can succeed before T1) */
	movq	%rbp, %rsp
	/* T1: IN_SYSCALL(s). A plain store is a release store on x86. */
	movq	TM_SYS(%r13), %r12
	incq	%r12				/* r12 = s (odd) */
	movq	%r12, TM_SYS(%r13)
	/* A sleeping watchdog must see this call: it pays a membarrier before it sleeps, so a
	   plain load after T1 is enough here. */
	cmpl	$0, ks_wd_asleep(%rip)
	jne	.Lkick
.Lidle:
	/* The idle detector's standby must be awake and on the runner's CPU (it can only see a
	   block there). Same pattern: a plain load after T1, the standby pays a membarrier. */
	movl	VP_SB_CPU1(%r14), %eax
	testl	%eax, %eax
	jz	.Lenter				/* no idle standby */
	movq	VP_RUNNER(%r14), %r11		/* rax, r10, r11 are free here; rcx is a3 */
	movl	ACT_RSEQ_CPU(%r11), %r11d
	incl	%r11d
	cmpl	%r11d, %eax
	jne	.Lidle_kick
.Lenter:
	/* T2: enter the kernel, unless the call was cancelled already (the cancel signal came
	   before this point, while the watchdog was being woken, say) */
	cmpl	$SA_CALL_CANCELLING_V, TM_CSTATE(%r13)
	jae	ks_trap_eintr
	.globl	ks_trap_window_start
	.hidden	ks_trap_window_start
ks_trap_window_start:			/* from here to the syscall, a cancel becomes EINTR */
	movq	%rdi, %rax
	movq	%rsi, %rdi
	movq	%rdx, %rsi
	movq	%rcx, %rdx
	movq	%r8, %r10
	movq	%r9, %r8
	movq	%r15, %r9
	syscall
	.globl	ks_trap_window_end
	.hidden	ks_trap_window_end
ks_trap_window_end:
.Lreturned:
	/* T3: out of the kernel (plain store); T4: did a claimer name this call? (plain load;
	   the claimer's membarrier orders the two) */
	leaq	1(%r12), %rcx
	movq	%rcx, TM_SYS(%r13)
	cmpq	TM_CLAIM(%r13), %r12
	je	.Lcontested
.Lowner:
	/* still the owner: back to the caller's stack and registers */
	movq	CTX_RSP(%r13), %rsp
	subq	$8, %rsp			/* the return address is still there */
	movq	CTX_RBX(%r13), %rbx
	movq	CTX_RBP(%r13), %rbp
	movq	CTX_R12(%r13), %r12
	movq	CTX_R14(%r13), %r14
	movq	CTX_R15(%r13), %r15
	movq	CTX_R13(%r13), %r13
	ret

.Lcontested:
	/* T5: wait for the claimer's verdict on call s (it is between its membarrier and its
	   verdict store: a few hundred ns, unless it was preempted) */
	movq	%rax, %rbx			/* the raw result */
	movl	$1024, %r15d
1:	movq	TM_VERDICT(%r13), %rcx
	movq	%rcx, %rdx
	shrq	$1, %rdx
	cmpq	%r12, %rdx
	je	2f
	pause
	decl	%r15d
	jnz	1b
	movl	$24, %eax			/* SYS_sched_yield: the claimer may need this CPU */
	syscall
	movl	$1024, %r15d
	jmp	1b
2:	testq	$1, %rcx
	jnz	.Llost
	movq	%rbx, %rax			/* the claimer backed off */
	jmp	.Lowner
.Llost:
	/* T6: the VP left with the claimer, who wears the user's TLS now. Take its old TLS
	   before running any C code, then finish the call as a blocked activation. */
	movq	TM_SWAPFS(%r13), %rdi
	call	ks_wrfs
	movq	%r14, %rdi
	movq	%r13, %rsi
	movq	%rbx, %rdx
	call	ks_after_lost
	ud2

.Lkick:
	/* wake the watchdog (rare: only the first call after it went to sleep) */
	SAVE_ARGS
	movl	$0, ks_wd_asleep(%rip)
	leaq	ks_wd_asleep(%rip), %rdi
	movl	$129, %esi			/* FUTEX_WAKE_PRIVATE */
	movl	$1, %edx
	movl	$202, %eax			/* SYS_futex */
	syscall
	RESTORE_ARGS
	jmp	.Lidle

.Lidle_kick:
	/* wake the idle standby or send it to this CPU (rare: the first call after it went to
	   sleep, or after the runner moved) */
	SAVE_ARGS
	movq	%r14, %rdi
	call	ks_idle_kick
	RESTORE_ARGS
	jmp	.Lenter

	/* A cancel signal arrived between T1 and the system call: the call did not run. */
	.globl	ks_trap_eintr
	.hidden	ks_trap_eintr
ks_trap_eintr:
	movq	%rbp, %rsp
	movq	$-EINTR_V, %rax
	jmp	.Lreturned
	.cfi_endproc
	.size	ks_trap, .-ks_trap

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
