#!/bin/sh
# scripts/timeline.sh - a PNG of a timeline that LAIO_TRACE_FILE or RT_TRACE_FILE wrote
# (docs/tracing.md): one horizontal lane per kernel thread, system calls and laio_poll() as
# boxes labelled by name, upcalls as marks, the hand-off and completion flows as arrows.
# Usage: sh scripts/timeline.sh trace.json out.png [title [from_ms to_ms]]   (needs gnuplot-nox)
#
# It reads the files this library writes, whose events are one per line; it is not a general
# JSON reader (Perfetto and chrome://tracing open any trace-event file).
set -eu
in=${1:?usage: timeline.sh trace.json out.png [title]}
out=${2:?usage: timeline.sh trace.json out.png [title]}
title=${3:-$(basename "$in")}
# optional window, in ms since the first event: timeline.sh in out title FROM TO
range=""
[ $# -ge 5 ] && range="set xrange [$4:$5]"
command -v gnuplot >/dev/null 2>&1 || {
	echo "timeline: gnuplot is missing: apt-get install gnuplot-nox (sh scripts/deps.sh timeline, as root)" >&2
	exit 1
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

awk -v dir="$tmp" '
function str(key) {                 # the string value of "key":"..." on this line
	if (!match($0, "\"" key "\":\"[^\"]*\"")) return ""
	return substr($0, RSTART + length(key) + 4, RLENGTH - length(key) - 5)
}
function num(key) {                 # the numeric value of "key":N on this line
	if (!match($0, "\"" key "\":-?[0-9.]+")) return ""
	return substr($0, RSTART + length(key) + 3, RLENGTH - length(key) - 3) + 0
}
function lane(tid) {                # lanes in the order kernel threads appear
	if (!(tid in laneof)) { laneof[tid] = ++nlanes; tidof[nlanes] = tid }
	return laneof[tid]
}
/"ph":"/ {
	ph = str("ph"); tid = num("tid"); ts = num("ts") / 1000.0   # ms
	if (ph == "M") {
		if (str("name") == "thread_name" && match($0, /"args":\{"name":"[^"]*"/))
			tname[tid] = substr($0, RSTART + 16, RLENGTH - 17)
		next
	}
	if (t0 == "" || ts < t0) t0 = ts
	y = lane(tid)
	if (ph == "X") {
		n++; sx[n] = ts; sy[n] = y; sd[n] = num("dur") / 1000.0; sn[n] = str("name")
		# colours: a call that did not block, a blocked one, laio_poll()
		sk[n] = sn[n] == "laio_poll" ? 11184810 : index($0, "\"handle\":") ? 13789470 : 4620980
	} else if (ph == "i") {
		m++; ix[m] = ts; iy[m] = y; nm = str("name")
		ik[m] = nm == "upcall BLOCKED" ? 9 : nm == "upcall UNBLOCKED" ? 13 : 7
	} else if (ph == "s" || ph == "f") {
		id = num("id")
		if (ph == "s") { fsx[id] = ts; fsy[id] = y } else { ffx[id] = ts; ffy[id] = y }
	}
}
END {
	if (t0 == "") t0 = 0
	for (i = 1; i <= n; i++)
		printf "%.6f %d %.6f %d \"%s\"\n", sx[i] - t0, sy[i], sd[i], sk[i], sn[i] > (dir "/spans")
	for (i = 1; i <= m; i++)
		printf "%.6f %d %d\n", ix[i] - t0, iy[i], ik[i] > (dir "/marks")
	for (id in fsx) if (id in ffx)    # hand-off (even ids) blue, completion (odd) green
		printf "%.6f %d %.6f %d %d\n", fsx[id] - t0, fsy[id], ffx[id] - fsx[id],
		       ffy[id] - fsy[id], id % 2 ? 2263842 : 2003199 > (dir "/flows")
	tics = ""
	for (l = 1; l <= nlanes; l++) {
		t = tidof[l]; nm = "kt " t
		if (t in tname) { nm = tname[t]; sub(/ \(kt [0-9]+\)$/, "", nm); nm = "kt " t ": " nm }
		tics = tics (l > 1 ? ", " : "") "\"" nm "\" " l
	}
	print "set ytics (" tics ")" > (dir "/lanes")
	print nlanes + 0 > (dir "/nlanes")
}' "$in"
[ -s "$tmp/spans" ] || { echo "timeline: no spans in $in" >&2; exit 1; }
touch "$tmp/marks" "$tmp/flows"
nl=$(cat "$tmp/nlanes")
height=$((160 + 70 * nl))

term="pngcairo size 1400,$height font 'Sans,9'"
gnuplot -e "set terminal" 2>&1 | grep -q pngcairo || term="png size 1400,$height"
gnuplot <<GP
set terminal $term
set output '$out'
set termoption noenhanced
set title "$title"
set xlabel 'time since the first event (ms)'
$range
load '$tmp/lanes'
set yrange [0.3:$nl + 0.8]
set ytics nomirror
set grid xtics
set key outside bottom center horizontal
set style fill solid 0.7 border -1
set offsets 0, 0, 0, 0
plot '$tmp/spans' using (\$1 + \$3 / 2):2:(\$3 / 2):(0.15):4 with boxxyerror lc rgb variable title 'system call: blue did not block, orange blocked (its span ends when it finished); grey laio_poll', \
     '' using 1:(\$2 + 0.28):5 with labels left rotate by 30 font ',8' notitle, \
     '$tmp/flows' using 1:2:3:4:5 with vectors head filled size screen 0.008,15 lc rgb variable title 'flow: the blocked call to the flow going on (blue), to its completion (green)', \
     '$tmp/marks' using 1:2:3 with points pt variable ps 1.5 lc rgb 'red' title 'upcall BLOCKED (triangle), UNBLOCKED (diamond), completion seen (circle)'
GP
echo "timeline: $out"
