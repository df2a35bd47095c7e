/*
 * entry.S - laio_syscall(), the variadic entry of the library (x86-64, System V).
 *
 * A variadic call passes its integer arguments where a call of a function with seven long
 * parameters expects them: number in %rdi, the first five arguments in %rsi, %rdx, %rcx, %r8,
 * %r9, the sixth at 8(%rsp). So laio_syscall() is a jump to laio_syscall7(), which takes them
 * as named parameters. Arguments the caller did not pass hold whatever their registers or stack
 * slot hold, and the system call ignores them, as with syscall(2), which glibc writes the same
 * way. Written in C with va_arg, reading arguments that were not passed would be undefined
 * behaviour (AddressSanitizer reports the sixth as a stack-buffer-underflow).
 *
 * laio_syscall_r(handle, number, ...) is the same with one more leading argument: its eight
 * land where laio_syscall_r8()'s eight long parameters are (the last two on the stack).
 */
	.text
	.globl	laio_syscall
	.type	laio_syscall, @function
laio_syscall:
	.cfi_startproc
	jmp	laio_syscall7
	.cfi_endproc
	.size	laio_syscall, .-laio_syscall

	.globl	laio_syscall_r
	.type	laio_syscall_r, @function
laio_syscall_r:
	.cfi_startproc
	jmp	laio_syscall_r8
	.cfi_endproc
	.size	laio_syscall_r, .-laio_syscall_r

	.section .note.GNU-stack, "", @progbits
