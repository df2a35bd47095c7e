/*
 * varargs_repro.c - LIBRARY BUG reproducer (fails until laio/laio.c is fixed).
 *
 * laio_syscall(long number, ...) reads six variadic arguments with va_arg whatever the caller
 * passed (laio/laio.c, laio_syscall: `for (i = 0; i < 6; i++) a[i] = va_arg(ap, long);`).
 * Reading past the arguments passed is undefined behaviour; on x86-64 the sixth one comes from
 * the caller's stack frame. Under clang's AddressSanitizer any call with fewer than six
 * arguments, here laio_syscall(SYS_getpid), is reported as a stack-buffer-underflow when the
 * caller's frame has a redzone there. glibc's syscall() does the same reads in assembly, where
 * they are harmless; in C they are not.
 *
 * Run: sh test/fuzz/run.sh --varargs-repro   (exit status 0 once fixed)
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
