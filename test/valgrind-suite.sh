#!/bin/sh
# test/valgrind-suite.sh BUILD_DIR SUITE - a Criterion suite under memcheck: fails on a memcheck
# error in any of its processes, or when the suite itself fails.
#
# Criterion runs each test in a child process (a fork that execs the suite again) and judges a
# test by what the child reports over its pipe, not by the child's exit status: valgrind's
# --error-exitcode in a child never reaches the runner, nor make. So every process writes its
# own log, each error between markers, and any marker in any log fails the step. Errors are
# written as they happen, so a child that execs or is killed before its summary still counts.
set -u
build=$1
suite=$2
dir=$build/valgrind/$(basename "$suite")
begin=MEMCHECK-ERROR-BEGIN
rm -rf "$dir"
mkdir -p "$dir"
echo "== valgrind $suite (logs: $dir)"
LAIO_SANITIZED=1 valgrind -q --trace-children=yes --error-exitcode=9 \
	--error-markers=$begin,MEMCHECK-ERROR-END --log-file="$dir/vg.%p.%n.log" \
	"$suite" --jobs 1
status=$?
errors=0
for log in "$dir"/vg.*.log; do
	[ -s "$log" ] || continue
	n=$(grep -c "$begin" "$log")
	if [ "$n" -gt 0 ]; then
		errors=$((errors + n))
		echo "-- $log: $n memcheck error(s)"
		cat "$log"
	fi
done
# Valgrind 3.19 (Debian 12) does not know pidfd_open (434): it fails with ENOSYS, the shim finds that a thread cannot
# copy another's descriptors (ENOSYS) and runs held calls on ordinary activations, with the
# caller's descriptor numbers, as on kernels before 5.6. Said once, not once per process.
if grep -qs 'unhandled amd64-linux syscall: 434' "$dir"/vg.*.log; then
	echo "valgrind: pidfd_open unknown to this valgrind: calls that hold their files ran without" \
		"movers (the fallback for kernels without pidfd_getfd)"
fi
others=$(grep -hs 'unhandled amd64-linux syscall' "$dir"/vg.*.log | grep -v 'syscall: 434' | sort -u)
[ -z "$others" ] || echo "$others"
if [ "$errors" -gt 0 ]; then
	echo "FAILED: $suite under valgrind: $errors memcheck error(s)"
	exit 1
fi
if [ "$status" -ne 0 ]; then
	echo "FAILED: $suite under valgrind: exit status $status"
	exit 1
fi
echo "valgrind: $suite: no memcheck error in any process"
