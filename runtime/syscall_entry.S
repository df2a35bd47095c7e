/*
 * syscall_entry.S - long rt_syscall(long number, ...): the variadic entry of rt_syscall6()
 * (syscall.c). The System V ABI passes the integer arguments of a variadic call in rdi, rsi,
 * rdx, rcx, r8, r9 and then on the stack, as for a fixed one (only %al, the count of vector
 * registers used, is extra): the six arguments are where rt_syscall6() expects them.
 */
	.text
	.globl	rt_syscall
	.type	rt_syscall, @function
rt_syscall:
	.cfi_startproc
	jmp	rt_syscall6
	.cfi_endproc
	.size	rt_syscall, .-rt_syscall

	.section .note.GNU-stack,"",@progbits
