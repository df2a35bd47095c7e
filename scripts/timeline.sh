#!/bin/sh
# scripts/timeline.sh - a PNG of a timeline that LAIO_TRACE_FILE or RT_TRACE_FILE wrote
# (docs/tracing.md): one horizontal lane per kernel thread, system calls and laio_poll() as
# boxes with one label each, upcalls as marks, the hand-off and completion flows as arrows.
# Usage: sh scripts/timeline.sh trace.json out.png [title [from_ms to_ms]]   (needs gnuplot-nox)
#   from_ms, to_ms: a window, in ms since the first event (either may be empty: the trace's end)
#
# A gap with no event at all that is longer than an eighth of the window (and 0.25 ms) is drawn
# as a narrow grey band saying how long it was: a 5 ms poll timeout would otherwise take the
# width and crowd every hand-off into its last pixels. Times on the axis stay the real ones.
#
# TIMELINE_DATA=dir keeps what is drawn there (the test checks it): spans.d, in.d and above.d
# (the labels), axis (tics and bands).
#
# It reads the files this library writes, whose events are one per line; it is not a general
# JSON reader (Perfetto and chrome://tracing open any trace-event file).
set -eu
usage="usage: timeline.sh trace.json out.png [title [from_ms to_ms]]"
in=${1:?$usage}
out=${2:?$usage}
title=${3:-$(basename "$in")}
from=${4:-}
to=${5:-}
for v in "$from" "$to"; do
	case $v in
	'' | *[!0-9.]* | *.*.*) [ -z "$v" ] || { echo "timeline: '$v' is not a time in ms" >&2; exit 2; } ;;
	esac
done
command -v gnuplot >/dev/null 2>&1 || {
	echo "timeline: gnuplot is missing: apt-get install gnuplot-nox (sh scripts/deps.sh timeline, as root)" >&2
	exit 1
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
width=1500
plot_px=1130 # the plot area's width in pixels, for what fits in it (the lanes' names take the rest)

# 1. the events, in ms since the first one, inside the window
awk -v dir="$tmp" -v from="$from" -v to="$to" '
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
function inside(t) { return t >= lo && t <= hi }
/"ph":"/ {
	ph = str("ph"); tid = num("tid"); ts = num("ts") / 1000.0   # ms
	if (ph == "M") {
		if (str("name") == "thread_name" && match($0, /"args":\{"name":"[^"]*"/))
			tname[tid] = substr($0, RSTART + 16, RLENGTH - 17)
		next
	}
	if (t0 == "" || ts < t0) t0 = ts
	k++; ev[k] = $0; et[k] = ts; eph[k] = ph; etid[k] = tid
}
END {
	lo = from == "" ? -1e300 : from + 0; hi = to == "" ? 1e300 : to + 0
	for (i = 1; i <= k; i++) {
		$0 = ev[i]; ph = eph[i]; ts = et[i] - t0
		if (ph == "X") {
			d = num("dur") / 1000.0; a = ts; b = ts + d
			if (b < lo || a > hi) continue
			if (a < lo) a = lo
			if (b > hi) b = hi
			nm = str("name"); h = str("handle")
			# colours: a call that did not block, a blocked one, laio_poll()
			c = nm == "laio_poll" ? 11184810 : h != "" ? 13789470 : 4620980
			printf "%.6f %.6f %d %d \"%s\"\n", a, b, lane(etid[i]), c, (h != "" ? nm " " h : nm) > (dir "/spans")
			print a > (dir "/instants"); print b > (dir "/instants")
		} else if (ph == "i") {
			if (!inside(ts)) continue
			nm = str("name")
			printf "%.6f %d %d\n", ts, lane(etid[i]), nm == "upcall BLOCKED" ? 9 : nm == "upcall UNBLOCKED" ? 13 : 7 > (dir "/marks")
			print ts > (dir "/instants")
		} else if (ph == "s" || ph == "f") {
			id = num("id")
			if (ph == "s") { fsx[id] = ts; fsy[id] = etid[i] } else { ffx[id] = ts; ffy[id] = etid[i] }
		}
	}
	for (id in fsx)                 # a flow whose two ends are in the window
		if ((id in ffx) && inside(fsx[id]) && inside(ffx[id]))
			printf "%.6f %d %.6f %d %d\n", fsx[id], lane(fsy[id]), ffx[id], lane(ffy[id]),
			       id % 2 ? 2263842 : 2003199 > (dir "/flows")
	tics = ""
	for (l = 1; l <= nlanes; l++) {
		t = tidof[l]; nm = "kt " t
		if (t in tname) { nm = tname[t]; sub(/ \(kt [0-9]+\)$/, "", nm); nm = "kt " t ": " nm }
		tics = tics (l > 1 ? ", " : "") "\"" nm "\" " l
	}
	print "set ytics (" tics ")" > (dir "/lanes")
	print nlanes + 0 > (dir "/nlanes")
}' "$in"
[ -s "$tmp/spans" ] || { echo "timeline: no spans in $in${from:+ between $from and ${to:-the end} ms}" >&2; exit 1; }
touch "$tmp/marks" "$tmp/flows"

# 2. the gaps with no event that are drawn narrow: "start end" in real ms
# a gap is long beside what is left once the longer ones are drawn narrow: a second look finds
# the shorter waits that the first one's length hid
sort -n "$tmp/instants" | awk '
	{ t[++n] = $1 }
	END {
		rest = t[n] - t[1]
		for (pass = 1; pass <= 2; pass++) {
			long = rest / 8
			if (long < 0.25) long = 0.25
			for (i = 1; i < n; i++)
				if (!(i in gap) && t[i + 1] - t[i] > long) { gap[i] = 1; rest -= t[i + 1] - t[i] }
		}
		for (i = 1; i < n; i++) if (i in gap) print t[i], t[i + 1]
		print "first", t[1]; print "last", t[n]
	}' >"$tmp/gaps"

# 3. everything on the drawn axis; labels placed where they fit; the axis's tics and bands
awk -v dir="$tmp" -v plot_px="$plot_px" '
function map(t,    i, x) {          # real ms -> drawn position
	x = t - first
	for (i = 1; i <= ng; i++) {
		if (t >= gb[i]) x -= (gb[i] - ga[i]) - band
		else if (t > ga[i]) { x -= (t - ga[i]) - (t - ga[i]) / (gb[i] - ga[i]) * band; break }
		else break
	}
	return x
}
function nice(x,    p) {            # 1, 2 or 5 times a power of ten, at least x
	p = 1; while (p > x) p /= 10; while (p * 10 <= x) p *= 10
	return x <= p ? p : x <= 2 * p ? 2 * p : x <= 5 * p ? 5 * p : 10 * p
}
FILENAME ~ /gaps$/ {
	if ($1 == "first") first = $2
	else if ($1 == "last") last = $2
	else { ng++; ga[ng] = $1; gb[ng] = $2 }
	next
}
FILENAME ~ /spans$/ {
	ns++; ra[ns] = $1; rb[ns] = $2; sl[ns] = $3; sc[ns] = $4
	st[ns] = $0; sub(/^[^"]*"/, "", st[ns]); sub(/"$/, "", st[ns])
	next
}
FILENAME ~ /marks$/ { nm++; mk[nm] = $0; next }
FILENAME ~ /flows$/ { nf++; fl[nf] = $0; next }
END {
	# the band a gap is drawn as: 7% of the stretches with events
	active = last - first
	for (i = 1; i <= ng; i++) active -= gb[i] - ga[i]
	if (active <= 0) active = 1
	band = ng ? active * 0.07 : 0
	for (i = 1; i <= ns; i++) { sa[i] = map(ra[i]); sb[i] = map(rb[i]) }
	for (i = 1; i <= nm; i++) { split(mk[i], f, " "); printf "%.6f %d %d\n", map(f[1]), f[2], f[3] > (dir "/marks.d") }
	for (i = 1; i <= nf; i++) {
		split(fl[i], f, " ")
		printf "%.6f %d %.6f %d %d\n", map(f[1]), f[2], map(f[3]) - map(f[1]), f[4] - f[2], f[5] > (dir "/flows.d")
	}
	total = map(last); if (total <= 0) total = 1
	per_px = total / plot_px
	minw = 3 * per_px                               # a box at least 3 pixels wide
	for (i = 1; i <= ns; i++) {
		w = sb[i] - sa[i]; if (w < minw) w = minw
		printf "%.6f %d %.6f %d\n", sa[i] + w / 2, sl[i], w / 2, sc[i] > (dir "/spans.d")
		# the label: inside the box if it fits, else above it, on the lowest of four rows
		# free there in this lane, starting where a thin line up from the box ends
		tw = (length(st[i]) * 6 + 8) * per_px
		cx = sa[i] + w / 2
		if (tw < w) { printf "%.6f %d \"%s\"\n", cx, sl[i], st[i] > (dir "/in.d"); continue }
		x = cx - 2 * per_px
		best = 1; bestend = 1e300
		for (r = 1; r <= 4; r++) {
			key = sl[i] SUBSEP r
			end = (key in right) ? right[key] : -1e300
			if (end < x) { best = r; bestend = -1; break }
			if (end < bestend) { best = r; bestend = end }
		}
		right[sl[i], best] = x + tw
		y = sl[i] + 0.12 + 0.15 * best
		printf "%.6f %.3f \"%s\"\n", x, y, st[i] > (dir "/above.d")
		printf "%.6f %.3f 0 %.3f\n", cx, sl[i] + 0.15, y - 0.05 - sl[i] - 0.15 > (dir "/leaders.d")
	}
	# tics at real times inside the active stretches; each band labelled with its length
	step = nice(total / 10)
	tics = ""
	a = first
	for (i = 1; i <= ng + 1; i++) {
		b = i <= ng ? ga[i] : last
		for (t = int(a / step + 0.999999) * step; t <= b + step * 1e-6; t += step)
			tics = tics (tics == "" ? "" : ", ") sprintf("\"%g\" %.6f", t, map(t))
		a = i <= ng ? gb[i] : a
	}
	printf "set xtics (%s)\n", tics > (dir "/axis")
	printf "set xrange [%.6f:%.6f]\n", -total * 0.01, total * 1.01 > (dir "/axis")
	for (i = 1; i <= ng; i++) {
		x0 = map(ga[i]); x1 = map(gb[i])
		printf "set object %d rect from %.6f, graph 0 to %.6f, graph 1 behind fc rgb \"#e8e8e8\" fs solid 1.0 noborder\n", i, x0, x1 > (dir "/axis")
		printf "set label %d \"no event\\n%.2f ms\" at %.6f, graph 0.97 center front font \",8\"\n", i, gb[i] - ga[i], (x0 + x1) / 2 > (dir "/axis")
	}
}' "$tmp/gaps" "$tmp/spans" "$tmp/marks" "$tmp/flows"
touch "$tmp/marks.d" "$tmp/flows.d" "$tmp/in.d" "$tmp/above.d" "$tmp/leaders.d"
nl=$(cat "$tmp/nlanes")
height=$((200 + 95 * nl))
window=""
[ -z "$from$to" ] || window=" (window ${from:-0} to ${to:-end} ms)"

# the plot's parts; an empty file is left out (gnuplot would warn about it)
part() {
	[ -s "$tmp/$1" ] && printf "%s'%s' %s" "${sep:-}" "$tmp/$1" "$2" && sep=", "
	return 0
}
plots() {
	sep=""
	part spans.d "using 1:2:3:(0.15):4 with boxxyerror lc rgb variable title 'system call: blue did not block, orange blocked (until it finished); grey laio_poll'"
	part in.d "using 1:2:3 with labels center font ',8' notitle"
	part leaders.d "using 1:2:3:4 with vectors nohead lc rgb '#888888' notitle"
	part above.d "using 1:2:3 with labels left font ',8' notitle"
	part flows.d "using 1:2:3:4:5 with vectors head filled size screen 0.008,15 lc rgb variable title 'flow: the blocked call to the flow going on (blue), to its completion (green)'"
	part marks.d "using 1:2:3 with points pt variable ps 1.5 lc rgb 'red' title 'upcall BLOCKED (triangle), UNBLOCKED (diamond), completion seen (circle)'"
}

term="pngcairo size $width,$height font 'Sans,9'"
gnuplot -e "set terminal" 2>&1 | grep -q pngcairo || term="png size $width,$height"
gnuplot <<GP
set terminal $term
set output '$out'
set termoption noenhanced
set title "$title$window"
set xlabel 'ms since the first event (grey bands: stretches with no event, drawn narrow)'
load '$tmp/axis'
load '$tmp/lanes'
set yrange [0.4:$nl + 0.75]
set ytics nomirror
set grid xtics
set lmargin at screen 0.21
set rmargin at screen 0.965
set bmargin 9
set key outside bottom center horizontal maxrows 3 height 1
set style fill solid 0.7 border -1
plot $(plots)
GP
if [ -n "${TIMELINE_DATA:-}" ]; then
	mkdir -p "$TIMELINE_DATA"
	cp "$tmp"/*.d "$tmp/axis" "$TIMELINE_DATA/"
fi
echo "timeline: $out"
