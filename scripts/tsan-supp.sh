#!/bin/sh
# scripts/tsan-supp.sh BUILD FILE... - ThreadSanitizer suppressions for the shim, from its objects.
#
# FILE... are the shim's sources. Under TSan the shim is built uninstrumented (see the Makefile),
# but the libc functions it calls still pass through TSan's interceptors, which then see one
# kernel thread's stack under several TSan threads (the shim exchanges TLS blocks, where TSan keeps
# its thread identity). Every function the shim's objects define is named here, read from their
# symbol tables so that a renamed or new function is never missed. A name that code outside the
# shim also defines is left out, so that a report about that code is never hidden; printed on
# stderr. The header (the why) comes from test/tsan.supp.
set -eu
build=$1
shift
cat test/tsan.supp
shim_objs=
for f in "$@"; do shim_objs="$shim_objs $build/obj/$f.o"; done
others=$(find "$build/obj" -name '*.o' | grep -v '/kernel-shim/')
# shellcheck disable=SC2086
nm --defined-only $others | awk '$2 ~ /^[Tt]$/ { print $3 }' | sort -u >"$build/tsan-supp.others"
# shellcheck disable=SC2086
nm --defined-only $shim_objs | awk '$2 ~ /^[Tt]$/ { print $3 }' | sort -u >"$build/tsan-supp.shim"
comm -12 "$build/tsan-supp.shim" "$build/tsan-supp.others" | sed 's/^/tsan-supp: also defined outside the shim, not suppressed: /' >&2
comm -23 "$build/tsan-supp.shim" "$build/tsan-supp.others" | sed 's/^/race:^/; s/$/$/'
