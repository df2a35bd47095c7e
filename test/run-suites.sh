#!/bin/sh
# Run each Criterion suite binary; print one closing line for all of them.
# Usage: test/run-suites.sh BUILD_DIR SUITE...
build=$1; shift
export LAIO_BUILD="$build"
pass=0; fail=0
for t in "$@"; do
	echo "== $t"
	if "$t" --jobs 1 --timeout 120; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAILED: $t"; fi
done
echo "suites: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
