#!/bin/sh
# scripts/layers.sh BUILD FILE... - the shim's files call one way.
#
# FILE... are the shim's sources in the Makefile's order, bottom layer first. A file A uses a
# file B when A's object has an undefined symbol that B's object defines (nm). Every use must
# go down the list: a file uses only files listed before it, so the files form no circle.
# Prints the uses and exits 1 on the first one that goes up (or sideways to a later file).
# Each object's symbol table is read once (a look-up per symbol and file ran nm some 30,000 times).
set -eu
build=$1
shift
i=0
for f in "$@"; do
	i=$((i + 1))
	echo "$i $f"
done >"$build/layers.order"
: >"$build/layers.up"
# "D index file symbol" for what each object defines, "U index file symbol" for what it needs
i=0
for f in "$@"; do
	i=$((i + 1))
	obj="$build/obj/$f.o"
	nm --defined-only "$obj" | awk -v i="$i" -v f="$f" '{ print "D", i, f, $3 }'
	nm -u "$obj" | awk -v i="$i" -v f="$f" '{ print "U", i, f, $2 }'
done >"$build/layers.syms"
awk -v up="$build/layers.up" '
$1 == "D" && !(($4, $3) in seen) { seen[$4, $3] = 1; n = ++ndef[$4]; defi[$4, n] = $2; deff[$4, n] = $3 }
$1 == "U" { nu++; ui[nu] = $2; uf[nu] = $3; us[nu] = $4 }
END {
	for (k = 1; k <= nu; k++)
		for (n = 1; n <= ndef[us[k]]; n++) {
			g = deff[us[k], n]
			if (g == uf[k])
				continue
			if (defi[us[k], n] + 0 > ui[k] + 0)
				print "layers: " uf[k] " uses " g " (" us[k] "), which is above it" >>up
			else
				print uf[k] " -> " g " (" us[k] ")"
		}
}' "$build/layers.syms" | sort -u
if [ -s "$build/layers.up" ]; then
	cat "$build/layers.up" >&2
	exit 1
fi
