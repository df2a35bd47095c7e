/* Offsets shared by trap.S and the C structures (checked by _Static_assert in vp.c). */
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
#define SA_CALL_CANCELLING_V 4
#define SA_CALL_CANCELLED_V 5
#define EINTR_V 4
#endif
