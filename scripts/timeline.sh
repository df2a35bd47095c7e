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
# TIMELINE_DATA=dir keeps what is drawn there (the test checks it): spans.d, marks.d, flows.d,
# in.d and above.d (the labels), leaders.d, axis (tics, bands, the vertical range), geometry (the
# sizes in pixels the labels were placed by) and plot.gp (what gnuplot was given, the legend's
# keys among it).
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
# heights in pixels: a row of labels (8-point text is 12 pixels from ascender to descender: 17
# leaves a clear gap between two rows), half a box, the leader line below the first row, the
# space between a lane's top row and the next lane's box, a lane at least, at most this many rows
# of labels above a lane; below the first lane, above the last one's labels (the bands' two
# lines), the title, the axis and legend
row_px=17 box_px=14 lead_px=5 gap_px=6 min_lane_px=95 max_rows=8
below_px=45 bandlabel_px=34 top_px=50 bottom_px=150
# colours (0xRRGGBB): a call that did not block, one that blocked, laio_poll(); the hand-off and
# completion flows. Points: the upcalls BLOCKED and UNBLOCKED, a completion the flow sees
ran=4620980 blocked=13789470 poll=11184810 handoff=2003199 completion=2263842
pt_blocked=9 pt_unblocked=13 pt_seen=7

# 1. the events, in ms since the first one, inside the window
awk -v dir="$tmp" -v from="$from" -v to="$to" -v ran=$ran -v blocked=$blocked -v poll=$poll \
	-v handoff=$handoff -v completion=$completion -v pt_blocked=$pt_blocked -v pt_unblocked=$pt_unblocked \
	-v pt_seen=$pt_seen '
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
			c = nm == "laio_poll" ? poll : h != "" ? blocked : ran
			printf "%.6f %.6f %d %d \"%s\"\n", a, b, lane(etid[i]), c, (h != "" ? nm " " h : nm) > (dir "/spans")
			print a > (dir "/instants"); print b > (dir "/instants")
		} else if (ph == "i") {
			if (!inside(ts)) continue
			nm = str("name")
			printf "%.6f %d %d\n", ts, lane(etid[i]), nm == "upcall BLOCKED" ? pt_blocked : nm == "upcall UNBLOCKED" ? pt_unblocked : pt_seen > (dir "/marks")
			print ts > (dir "/instants")
		} else if (ph == "s" || ph == "f") {
			id = num("id")
			if (ph == "s") { fsx[id] = ts; fsy[id] = etid[i] } else { ffx[id] = ts; ffy[id] = etid[i] }
		}
	}
	for (id in fsx)                 # a flow whose two ends are in the window
		if ((id in ffx) && inside(fsx[id]) && inside(ffx[id]))
			printf "%.6f %d %.6f %d %d\n", fsx[id], lane(fsy[id]), ffx[id], lane(ffy[id]),
			       id % 2 ? completion : handoff > (dir "/flows")
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
awk -v dir="$tmp" -v plot_px="$plot_px" -v nlanes="$(cat "$tmp/nlanes")" -v row_px=$row_px -v box_px=$box_px \
	-v lead_px=$lead_px -v gap_px=$gap_px -v min_lane_px=$min_lane_px -v max_rows=$max_rows \
	-v below_px=$below_px -v bandlabel_px=$bandlabel_px -v top_px=$top_px -v bottom_px=$bottom_px '
function map(t,    i, x) {          # real ms -> drawn position
	x = t - first
	for (i = 1; i <= ng; i++) {
		if (t >= gb[i]) x -= (gb[i] - ga[i]) - band
		else if (t > ga[i]) { x -= (t - ga[i]) - (t - ga[i]) / (gb[i] - ga[i]) * band; break }
		else break
	}
	return x
}
function free_row(l, x, tw,    r, key, best, bestend) {   # the lowest row above lane l free from x on
	for (r = 1; r <= max_rows; r++) {
		key = l SUBSEP r
		if (!(key in right) || right[key] < x) { right[key] = x + tw; return r }
		if (r == 1 || right[key] < bestend) { best = r; bestend = right[key] }
	}
	crowded++
	if (x + tw > right[l, best]) right[l, best] = x + tw
	return best
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
	xmax = total * 1.01
	for (i = 1; i <= ns; i++) {
		w = sb[i] - sa[i]; if (w < minw) w = minw
		printf "%.6f %d %.6f %d\n", sa[i] + w / 2, sl[i], w / 2, sc[i] > (dir "/spans.d")
		# the label: inside the box if it fits, else above it, on the lowest row free there in
		# this lane, starting where a thin line up from the box ends (but inside the plot)
		tw = (length(st[i]) * 6 + 8) * per_px
		cx = sa[i] + w / 2
		if (tw < w) { printf "%.6f %d \"%s\"\n", cx, sl[i], st[i] > (dir "/in.d"); continue }
		x = cx - 2 * per_px
		if (x + tw > xmax) x = xmax - tw
		na++; lx[na] = x; lcx[na] = cx; llane[na] = sl[i]; ltext[na] = st[i]
		lrow[na] = free_row(sl[i], x, tw)
		if (lrow[na] > rows) rows = lrow[na]
		if (sl[i] == nlanes && lrow[na] > toprows) toprows = lrow[na]
	}
	if (crowded) printf "timeline: %d labels share a row with another (more than %d rows above one lane): draw a narrower window\n", crowded, max_rows > "/dev/stderr"
	# the labels of the bands, at the top: a second level (and more) where bands are too close
	# for their labels to stand side by side
	for (i = 1; i <= ng; i++) {
		gtext[i] = sprintf("%.2f ms", gb[i] - ga[i])
		tw = ((length(gtext[i]) > 8 ? length(gtext[i]) : 8) * 6 + 8) * per_px
		x = (map(ga[i]) + map(gb[i])) / 2
		if (x - tw / 2 < -total * 0.01) x = -total * 0.01 + tw / 2
		if (x + tw / 2 > xmax) x = xmax - tw / 2
		gx[i] = x
		glevel[i] = free_row(0, x - tw / 2, tw)  # "lane 0": the rows of the labels of the bands
		if (glevel[i] > levels) levels = glevel[i]
	}
	# the vertical scale, in pixels: a lane is tall enough for its box and its rows of labels
	lane_px = box_px * 2 + lead_px + rows * row_px + gap_px
	if (lane_px < min_lane_px) lane_px = min_lane_px
	ymin = 1 - below_px / lane_px
	# above the last lane: its own rows of labels, then the labels of the bands
	ymax = nlanes + (box_px + lead_px + toprows * row_px + gap_px + levels * bandlabel_px) / lane_px
	for (j = 1; j <= na; j++) {
		y = llane[j] + (box_px + lead_px + (lrow[j] - 0.5) * row_px) / lane_px
		printf "%.6f %.4f \"%s\"\n", lx[j], y, ltext[j] > (dir "/above.d")
		b = llane[j] + box_px / lane_px
		printf "%.6f %.4f 0 %.4f\n", lcx[j], b, y - b > (dir "/leaders.d")
	}
	height = top_px + int((ymax - ymin) * lane_px + 0.5) + bottom_px
	printf "lane_px %d\nbox %.4f\nymin %.4f\nymax %.4f\nxmax %.6f\nplot_px %d\nheight %d\n",
	       lane_px, box_px / lane_px, ymin, ymax, xmax, plot_px, height > (dir "/geometry")
	printf "set yrange [%.4f:%.4f]\nset tmargin at screen %.6f\nset bmargin at screen %.6f\n",
	       ymin, ymax, 1 - top_px / height, bottom_px / height > (dir "/axis")
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
		printf "set label %d \"no event\\n%s\" at %.6f, %.4f center front font \",8\"\n", i, gtext[i], gx[i],
		       ymax - (glevel[i] - 0.5) * bandlabel_px / lane_px > (dir "/axis")
	}
}' "$tmp/gaps" "$tmp/spans" "$tmp/marks" "$tmp/flows"
touch "$tmp/marks.d" "$tmp/flows.d" "$tmp/in.d" "$tmp/above.d" "$tmp/leaders.d"
height=$(sed -n 's/^height //p' "$tmp/geometry")
box=$(sed -n 's/^box //p' "$tmp/geometry")
window=""
[ -z "$from$to" ] || window=" (window ${from:-0} to ${to:-end} ms)"

# the plot's parts; an empty file is left out (gnuplot would warn about it), and so is a kind of
# box, mark or arrow that the picture does not hold (its key would name something not drawn)
part() {
	[ -s "$tmp/$1" ] && printf "%s'%s' %s" "${sep:-}" "$tmp/$1" "$2" && sep=", \\
	"
	return 0
}
has() { # file column value
	awk -v c="$2" -v v="$3" '$c == v { found = 1; exit } END { exit !found }' "$tmp/$1"
}
# one key per kind, each drawn with its own colour or symbol: a key for a variable colour or
# point type would show one sample (or none) for all of them
kind() { # file column value, then the part
	! has "$1" "$2" "$3" || part "$1" "$4"
}
plots() {
	sep=""
	# boxes: a call that did not block, one that blocked (until it finished), laio_poll()
	kind spans.d 4 $ran "using 1:(\$4 == $ran ? \$2 : NaN):3:($box) with boxxyerror lc rgb $ran title 'system call that did not block'"
	kind spans.d 4 $blocked "using 1:(\$4 == $blocked ? \$2 : NaN):3:($box) with boxxyerror lc rgb $blocked title 'system call that blocked, until it finished'"
	kind spans.d 4 $poll "using 1:(\$4 == $poll ? \$2 : NaN):3:($box) with boxxyerror lc rgb $poll title 'laio_poll()'"
	part in.d "using 1:2:3 with labels center font ',8' notitle"
	part leaders.d "using 1:2:3:4 with vectors nohead lc rgb '#888888' notitle"
	part above.d "using 1:2:3 with labels left boxed font ',8' notitle"
	# marks: the upcalls, and where the flow learns a call finished
	kind marks.d 3 $pt_blocked "using 1:(\$3 == $pt_blocked ? \$2 : NaN) with points pt $pt_blocked ps 1.5 lc rgb 'red' title 'upcall BLOCKED'"
	kind marks.d 3 $pt_unblocked "using 1:(\$3 == $pt_unblocked ? \$2 : NaN) with points pt $pt_unblocked ps 1.5 lc rgb 'red' title 'upcall UNBLOCKED'"
	kind marks.d 3 $pt_seen "using 1:(\$3 == $pt_seen ? \$2 : NaN) with points pt $pt_seen ps 1.5 lc rgb 'red' title 'a completion seen by the flow'"
	# arrows: the hand-off, the completion
	kind flows.d 5 $handoff "using 1:(\$5 == $handoff ? \$2 : NaN):3:4 with vectors head filled size screen 0.008,15 lc rgb $handoff title 'flow: the blocked call to the flow going on'"
	kind flows.d 5 $completion "using 1:(\$5 == $completion ? \$2 : NaN):3:4 with vectors head filled size screen 0.008,15 lc rgb $completion title 'flow: the call finished, to where it is seen'"
}

term="pngcairo size $width,$height font 'Sans,9'"
gnuplot -e "set terminal" 2>&1 | grep -q pngcairo || term="png size $width,$height"
cat >"$tmp/plot.gp" <<GP
set terminal $term
set output '$out'
set termoption noenhanced
set title "$title$window"
set xlabel 'ms since the first event (grey bands: stretches with no event, drawn narrow)'
load '$tmp/axis'
load '$tmp/lanes'
set ytics nomirror
set grid xtics
set lmargin at screen 0.21
set rmargin at screen 0.965
set key at screen 0.5, screen $(awk -v h="$height" -v b="$bottom_px" 'BEGIN { printf "%.6f", (b - 62) / h }') center top vertical Left reverse maxrows 3 height 1 width -6
set style fill solid 0.7 border -1
# a label above a box hides the leader lines of the rows above it where it is written
set style textbox opaque noborder margins 1,1
plot $(plots)
GP
gnuplot "$tmp/plot.gp"
if [ -n "${TIMELINE_DATA:-}" ]; then
	mkdir -p "$TIMELINE_DATA"
	cp "$tmp"/*.d "$tmp/axis" "$tmp/geometry" "$tmp/plot.gp" "$TIMELINE_DATA/"
fi
echo "timeline: $out"
