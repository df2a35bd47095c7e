/*
 * trap.S - the system call trap (x86-64, System V), the top of the shim.
 *
 * ks_trap is what a real kernel's syscall entry does for scheduler activations: save the user
 * context where an upcall can find it, say "in a system call" (tm_sys odd), run the call on
 * a stack the activation owns, and on return decide who owns the virtual processor. The steps
 * T0-T6 are those of docs/protocol.md. The fast path (call did not block, nobody claimed it) is
 * plain loads and stores: no locked instruction, no system call besides the call itself.
 * Detectors are reached only through ks_kick[] and ks_trap_kick (detect.c): the trap knows
 * none of them.
 */
#include "ks-offsets.h"

/* T5 spins this many pauses (1-4 us) before it yields: a claimer on another CPU decides within
 * that, and one on this CPU (a pinned program; the claimer woke where the runner blocked) cannot
 * decide until the runner gives the CPU up. A longer spin only delays it there. */
#define T5_SPIN 64

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
	/* T1k: does a detector want to hear of calls on this CPU (its thread sleeps)? A plain
	   load after T1: a detector that sets its bit pays a membarrier before it looks at
	   tm_sys and sleeps, so either it sees T1 or this load sees its bit. */
	movq	VP_RUNNER(%r14), %r11		/* rax, r10, r11 are free here; rcx is a3 */
	movl	ACT_RSEQ_CPU(%r11), %r11d	/* this CPU: the kernel wrote it on the way out */
	andl	$KS_MAXCPU_V - 1, %r11d
	leaq	ks_kick(%rip), %rax
	cmpl	$0, (%rax,%r11,4)
	jne	.Lkick
.Lenter:
	/* T2: enter the kernel, unless the call was cancelled already (the cancel signal came
	   before this point, while a detector was being woken, say) */
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
	   the claimer orders the two: docs/protocol.md, C2) */
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
	/* T5: wait for the claimer's verdict on call s (it is between its confirmation and its
	   verdict store: a few hundred ns, unless it was preempted) */
	movq	%rax, %rbx			/* the raw result */
	movl	$T5_SPIN, %r15d
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
	movl	$T5_SPIN, %r15d
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
	/* rare: the first call on this CPU after a detector's thread went to sleep */
	SAVE_ARGS
	movq	%r14, %rdi
	movl	%r11d, %esi
	call	ks_trap_kick
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

	.section .note.GNU-stack,"",@progbits
