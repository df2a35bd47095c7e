/*
 * varargs_repro.c - regression of a fixed defect: laio_syscall() with fewer than six arguments.
 *
 * laio_syscall(long number, ...) once read six variadic arguments with va_arg whatever the
 * caller passed. Reading past the arguments passed is undefined behaviour; on x86-64 the sixth
 * comes from the caller's stack frame, and clang's AddressSanitizer reported
 * laio_syscall(SYS_getpid) from a frame with redzones as a stack-buffer-underflow. The entry is
 * now a jump in assembly (laio/entry.S) to a function with seven named parameters, as glibc's
 * syscall() reads its arguments in assembly.
 *
 * Run: sh test/fuzz/run.sh --varargs-repro   (exit status 0: fixed)
 */
#include <sys/syscall.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "laio.h"

__attribute__((noinline)) static long caller_with_locals(void)
{
	char local[32];                 /* a frame with redzones around an escaping local */
	memset(local, 0, sizeof local);
	__asm__ volatile("" : : "r"(local) : "memory");
	return laio_syscall(SYS_getpid); /* no argument after the number: valid C */
}

int main(void)
{
	long r = caller_with_locals();
	printf("laio_syscall(SYS_getpid) = %ld (getpid %d)\n", r, (int)getpid());
	return r == getpid() ? 0 : 1;
}
