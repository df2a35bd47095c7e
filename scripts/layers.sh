#!/bin/sh
# scripts/layers.sh BUILD FILE... - the shim's files call one way.
#
# FILE... are the shim's sources in the Makefile's order, bottom layer first. A file A uses a
# file B when A's object has an undefined symbol that B's object defines (nm). Every use must
# go down the list: a file uses only files listed before it, so the files form no circle.
# Prints the uses and exits 1 on the first one that goes up (or sideways to a later file).
set -eu
build=$1
shift
i=0
for f in "$@"; do
	i=$((i + 1))
	echo "$i $f"
done >"$build/layers.order"
: >"$build/layers.up"
for f in "$@"; do
	obj="$build/obj/$f.o"
	mine=$(awk -v f="$f" '$2 == f { print $1 }' "$build/layers.order")
	for sym in $(nm -u "$obj" | awk '{ print $2 }'); do
		for g in "$@"; do
			[ "$g" = "$f" ] && continue
			if nm --defined-only "$build/obj/$g.o" | awk '{ print $3 }' | grep -qx "$sym"; then
				theirs=$(awk -v f="$g" '$2 == f { print $1 }' "$build/layers.order")
				if [ "$theirs" -gt "$mine" ]; then
					echo "layers: $f uses $g ($sym), which is above it" >>"$build/layers.up"
				else
					echo "$f -> $g ($sym)"
				fi
			fi
		done
	done
done | sort -u
if [ -s "$build/layers.up" ]; then
	cat "$build/layers.up" >&2
	exit 1
fi
