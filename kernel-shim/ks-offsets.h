/* Offsets shared by trap.S, runtime/switch.S and the C structures (checked by _Static_assert in
 * vp.c), and the context save/resume sequences of both assembly files. */
#ifndef KS_OFFSETS_H
#define KS_OFFSETS_H
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
#define TM_SYS 72
#define TM_CLAIM 80
#define TM_VERDICT 88
#define TM_SWAPFS 96
#define TM_CSTATE 116
#define TM_NR 120
#define TM_ARGS 128
#define SA_CURTHREAD 0
#define SA_VP 8
#define VP_KSTACK 8
#define VP_RUNNER 16
#define KS_MAXCPU_V 1024
#define ACT_RSEQ_CPU 4
#define SA_CALL_CANCELLING_V 4
#define SA_CALL_CANCELLED_V 5
#define EINTR_V 4

#ifdef __ASSEMBLER__
/* Save, in the sa_context at \ctx, the context of the current function's caller as it will be
 * once this function returns: callee-saved registers, the return address, the stack above it,
 * MXCSR and the x87 control word. Clobbers %rax. */
.macro CTX_SAVE_CALLER ctx
	movq	%rbx, CTX_RBX(\ctx)
	movq	%rbp, CTX_RBP(\ctx)
	movq	%r12, CTX_R12(\ctx)
	movq	%r13, CTX_R13(\ctx)
	movq	%r14, CTX_R14(\ctx)
	movq	%r15, CTX_R15(\ctx)
	movq	(%rsp), %rax
	movq	%rax, CTX_RIP(\ctx)
	leaq	8(%rsp), %rax
	movq	%rax, CTX_RSP(\ctx)
	stmxcsr	CTX_MXCSR(\ctx)
	fnstcw	CTX_FPUCW(\ctx)
.endm

/* Continue the sa_context at \ctx, which returns %rax there. \ctx must not be a register the
 * sequence loads (%rbx, %rbp, %r12-%r15, %rsp). */
.macro CTX_RESUME ctx
	ldmxcsr	CTX_MXCSR(\ctx)
	fldcw	CTX_FPUCW(\ctx)
	movq	CTX_RBX(\ctx), %rbx
	movq	CTX_RBP(\ctx), %rbp
	movq	CTX_R12(\ctx), %r12
	movq	CTX_R13(\ctx), %r13
	movq	CTX_R14(\ctx), %r14
	movq	CTX_R15(\ctx), %r15
	movq	CTX_RSP(\ctx), %rsp
	jmpq	*CTX_RIP(\ctx)
.endm
#endif
#endif
