#!/bin/sh
# test/fuzz/run.sh SECONDS [BUILD_DIR] - build the libFuzzer target (the library's sources
# compiled with clang, -fsanitize=fuzzer,address) and run it for SECONDS seconds.
# Exit status 0 if no invariant was violated and no sanitizer fired; the input that broke it is
# kept in BUILD_DIR/fuzz/ (crash-*, timeout-*). Inputs found to be interesting are kept in
# BUILD_DIR/fuzz/corpus and reused by the next run.
# test/fuzz/run.sh --varargs-repro [BUILD_DIR] - build and run varargs_repro.c (regression of
# a fixed defect: exit status 0 while it stays fixed).
set -eu
repro=0
if [ "${1:-}" = "--varargs-repro" ]; then repro=1; shift; set -- 0 "$@"; fi
secs=${1:-20}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${2:-${BUILD:-$root/build}}
out=$build/fuzz
CC=${FUZZ_CC:-clang}
mkdir -p "$out/obj" "$out/corpus"

# clang 14 does not define __SANITIZE_ADDRESS__ (gcc does); the shim keys its stack hygiene
# for AddressSanitizer on it, so it is defined here.
flags="-std=gnu11 -O1 -g -fno-omit-frame-pointer -Wall -Wextra -pthread -D_GNU_SOURCE \
-D_LGPL_SOURCE -D__SANITIZE_ADDRESS__ -fsanitize=address,fuzzer-no-link"
srcs="kernel-shim/act.c kernel-shim/claim.c kernel-shim/futex.c kernel-shim/move.c \
kernel-shim/probe.c kernel-shim/tls.c kernel-shim/upcall.c kernel-shim/vp.c \
kernel-shim/watchdog.c kernel-shim/trap.S activation/sa.c laio/laio.c laio/upcall_handler.c laio/entry.S"
objs=""
for s in $srcs; do
	o="$out/obj/$(echo "$s" | tr / _).o"
	if [ ! -e "$o" ] || [ "$root/$s" -nt "$o" ] || [ -n "$(find "$root/kernel-shim" \
	    "$root/activation" "$root/laio" -name '*.h' -newer "$o" 2>/dev/null | head -1)" ]; then
		$CC $flags -c "$root/$s" -o "$o"
	fi
	objs="$objs $o"
done
if [ $repro = 1 ]; then
	# regression (test/fuzz/varargs_repro.c): fails if laio_syscall() reads
	# variadic arguments that were not passed
	$CC $flags -I"$root/laio" -o "$out/varargs_repro" "$here/varargs_repro.c" $objs
	ASAN_OPTIONS=detect_leaks=0 "$out/varargs_repro"
	exit $?
fi
$CC $flags -fsanitize=fuzzer -I"$root/laio" -o "$out/fuzz_laio" "$here/fuzz_laio.c" $objs

# a few seeds: one per detector, each a short mix of calls, polls and cancels
for d in 0 1 2 3 4; do
	printf "\\$(printf %o $d)\\000\\003\\020\\005\\010\\002\\001\\013\\001\\040\\012\\000\\000\\010\\011\\004\\005\\000\\000\\000\\000\\001\\000\\010\\000\\006" \
		> "$out/corpus/seed-$d"
done

cd "$out"
echo "fuzz: $secs s of $out/fuzz_laio"
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1} \
	./fuzz_laio -max_total_time="$secs" -timeout=30 -rss_limit_mb=4096 -max_len=512 \
	-print_final_stats=1 corpus
