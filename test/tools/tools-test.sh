#!/bin/sh
# tools-test.sh BUILD - what the benchmarks and scripts show a reader (part of `make test`):
#   1. pipebench's output, captured (stdout and stderr in one file): no progress, no line split,
#      the paper's ratios last, with the machine; the paper's figure on laio-auto only
#   2. the same on a terminal: progress on one line that rewrites itself, cleared before results
#   3. `make results` (scripts/results-tables.sh --update) with only pipebench.csv: the pipe
#      section regenerated with its paper column, the other sections kept, and it says so
#   4. scripts/timeline.sh on the paper's example: one label per box, rows of labels that neither
#      touch nor leave their lane, the 5 ms wait drawn as a band, a key of its own for each kind of
#      box, mark and arrow, a window that keeps only what is inside it, an empty window refused
# Prints one line per check; exits 1 at the first failure. Timings are never checked.
set -eu
build=$(cd "${1:?usage: tools-test.sh BUILD}" && pwd)
top=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/laio-tools.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { printf "tools-test: FAIL: %s\n" "$*" >&2; exit 1; }
ok() { printf "tools-test: ok: %s\n" "$*"; }
skip() { printf "tools-test: skipped: %s\n" "$*"; }
cd "$top"

make -s --no-print-directory -C microbench BUILD="$build" "$build/microbench/pipebench" \
	>"$work/mb.log" 2>&1 || { cat "$work/mb.log"; fail "building microbench/pipebench"; }
pb="$build/microbench/pipebench --rounds 1 --n-full 2000 --n-empty 40 --no-png --outdir $work"
pb="$pb --only raw-read,nb-epoll,posix-aio,laio-auto,laio-eager"

# 1. captured: what a log of `make bench` holds
# exit 4 (a detector missed a block: the watchdog released it) is about the machine, not the output
rc=0
$pb --summary "$work/summary.txt" >"$work/out" 2>&1 || rc=$?
[ $rc -eq 0 ] || [ $rc -eq 4 ] || { cat "$work/out"; fail "pipebench (exit $rc)"; }
grep -q 'round 1/1' "$work/out" && fail "progress in captured output: $(grep -m1 'round 1/1' "$work/out")"
tr -d '\n' <"$work/out" | grep -q "$(printf '\r')" && fail "a carriage return in captured output"
last=$(grep '^== ' "$work/out" | tail -n 1)
[ "$last" = "== the paper's ratios beside ours (this run's medians) ==" ] ||
	fail "the last section is '$last', not the paper's ratios"
n=$(wc -l <"$work/summary.txt")
tail -n "$n" "$work/out" | cmp -s - "$work/summary.txt" || fail "the output does not end with the summary file's text"
grep -q '^machine: .*CPUs, kernel ' "$work/summary.txt" || fail "the summary names no machine"
auto=$(grep '^laio-auto ' "$work/out" | head -n 1)
eager=$(grep '^laio-eager ' "$work/out" | head -n 1)
case $auto in *'1.4 x NB (talk)'*) ;; *) fail "laio-auto's full-pipe row lacks the paper's 1.4 x NB: $auto" ;; esac
case $eager in *' x NB'* | *' x AIO'*) fail "laio-eager carries a paper figure: $eager" ;; esac
awk -F, 'NR > 1 && $2 != "laio-auto" && $0 ~ /"1\.4 x NB/ { bad = 1 } END { exit bad }' \
	"$work/pipebench.csv" || fail "pipebench.csv puts the paper's 1.4 x NB on a row other than laio-auto"
ok "pipebench captured: no progress, the paper's ratios last with the machine, the paper's figures on laio-auto only"

# 2. on a terminal: progress rewrites one line and is cleared before the tables
if command -v script >/dev/null 2>&1; then
	script -qc "$pb" /dev/null >"$work/tty" 2>&1 </dev/null || true
	cr=$(printf '\r')
	grep -q "${cr}pipebench: pipe full, round 1/1" "$work/tty" ||
		fail "no progress line on a terminal: $(head -c 300 "$work/tty" | cat -v)"
	grep -a '^variant ' "$work/tty" | grep -q 'round' && fail "a progress line ran into a table header"
	ok "pipebench on a terminal: progress on one line (carriage return, erase to end of line), none inside the tables"
else
	skip "pipebench on a terminal: script(1) is not installed"
fi

# 3. make results with only the pipe CSV
cp docs/results.md "$work/results.md"
sh scripts/results-tables.sh "$work" --update "$work/results.md" 2>"$work/results.err" ||
	fail "results-tables.sh --update"
grep -q 'kept "### Hand-off latency"' "$work/results.err" && grep -q 'kept "### The web server"' "$work/results.err" ||
	fail "results-tables.sh did not say which sections it kept: $(cat "$work/results.err")"
# a kept section may gain the line that says it was kept (and its blank line); nothing else
section() { awk -v h="$1" 'index($0, h) == 1 { on = 1 } on && /^### / && index($0, h) != 1 { exit }
	/^\*Kept from an earlier run/ { skip = 1; next } skip && /^$/ { skip = 0; next } on' "$2"; }
for h in "### Hand-off latency" "### The web server"; do
	section "$h" docs/results.md >"$work/was"
	section "$h" "$work/results.md" >"$work/now"
	[ -s "$work/was" ] || continue
	cmp -s "$work/was" "$work/now" || fail "the section '$h' changed although its CSV is absent"
done
grep -q "^### The pipe microbenchmark (\`$work/pipebench.csv\`)" "$work/results.md" || fail "the pipe section was not regenerated"
grep -q '^| variant | ns/read | spread | x raw | x NB | x AIO | x io_uring | paper | notes |$' "$work/results.md" ||
	fail "the generated pipe table has no paper column"
grep -q '^| laio-auto | .* | 1.4 x NB (talk) | ' "$work/results.md" || fail "the paper column lost laio-auto's figure"
ok "make results with only pipebench.csv: the pipe tables regenerated with the paper column, the other sections kept and named"

# 4. the timeline picture
if ! command -v gnuplot >/dev/null 2>&1; then
	skip "timeline: gnuplot is not installed (make timeline installs it as root)"
	exit 0
fi
LAIO_TRACE_FILE="$work/paper.json" "$build/docs/examples/laio_paper" >/dev/null 2>&1 || fail "laio_paper"
TIMELINE_DATA="$work/tl" sh scripts/timeline.sh "$work/paper.json" "$work/paper.png" >/dev/null ||
	fail "timeline.sh"
head -c 8 "$work/paper.png" | od -c | grep -q 'P   N   G' || fail "timeline.sh wrote no PNG"
spans=$(wc -l <"$work/tl/spans.d")
labels=$(cat "$work/tl/in.d" "$work/tl/above.d" | wc -l)
[ "$spans" -eq "$labels" ] || fail "$spans boxes, $labels labels"
grep -q '^set object 1 rect' "$work/tl/axis" || fail "the poll's 5 ms timeout is not drawn as a band"
# the rows of labels above the boxes: on one lane and row, no label starts before the previous
# one ends (a label is 6 pixels a character wide; the width of a pixel is in the tics' scale)
total=$(sed -n 's/^set xrange \[[^:]*:\([^]]*\)\].*/\1/p' "$work/tl/axis")
awk -v total="$total" '{ t = $0; sub(/^[^"]*"/, "", t); sub(/"$/, "", t)
	key = $2; x = $1 + 0; w = (length(t) * 6 + 8) * total / 1.01 / 1130
	if ((key in end) && x < end[key] - 1e-9) { print "overlap: " $0; bad = 1 }
	end[key] = x + w } END { exit bad }' "$work/tl/above.d" || fail "labels above the boxes overlap"
# the legend: each kind of box, mark and arrow drawn has a key of its own, drawn with that kind's
# colour or symbol (a key for a variable colour or symbol shows one sample, or none, for all)
grep 'title' "$work/tl/plot.gp" | grep -q 'variable' && fail "a key for a variable colour or symbol: $(grep 'variable.*title' "$work/tl/plot.gp")"
keys() { # file column, then what stands before the value on its plot line
	for v in $(awk -v c="$2" '{ print $c }' "$work/tl/$1" | sort -u); do
		grep "'[^']*/$1' using .*== $v ?" "$work/tl/plot.gp" | grep "$3 $v " | grep -q "title '[^']" ||
			fail "no key of its own for $1's kind $v"
	done
}
keys marks.d 3 'with points pt'
keys spans.d 4 'lc rgb'
keys flows.d 5 'lc rgb'
nmarks=$(awk '{ print $3 }' "$work/tl/marks.d" | sort -u | wc -l)
[ "$nmarks" -eq 3 ] || fail "the paper's example has BLOCKED, UNBLOCKED and completion marks, not $nmarks kinds"
# the labels above the boxes (in DIR): two rows over one stretch of a lane far enough apart that
# 8-point text (12 pixels from ascender to descender) leaves a clear gap, every row between its
# lane's boxes and the next lane's, every label inside the plot; the bands' labels side by side
# or apart. Prints how many rows the most crowded lane has, and how many labels end at the edge.
placed() {
	lane_px=$(sed -n 's/^lane_px //p' "$1/geometry" 2>/dev/null) box=$(sed -n 's/^box //p' "$1/geometry" 2>/dev/null)
	ymax=$(sed -n 's/^ymax //p' "$1/geometry" 2>/dev/null) xmax=$(sed -n 's/^xmax //p' "$1/geometry" 2>/dev/null)
	plot_px=$(sed -n 's/^plot_px //p' "$1/geometry" 2>/dev/null)
	[ -n "$lane_px" ] && [ -n "$box" ] && [ -n "$ymax" ] && [ -n "$xmax" ] && [ -n "$plot_px" ] ||
		fail "timeline.sh left no geometry in $1"
	awk -v px="$lane_px" -v box="$box" -v ymax="$ymax" -v xmax="$xmax" -v plot_px="$plot_px" '
	{ t = $0; sub(/^[^"]*"/, "", t); sub(/"$/, "", t)
	  n++; x[n] = $1; y[n] = $2; w[n] = (length(t) * 6 + 8) * xmax / 1.01 / plot_px; l[n] = int($2 + 1e-9)
	  if ((y[n] - l[n] - box) * px < 6 || (l[n] + 1 - box - y[n]) * px < 6 || (ymax - y[n]) * px < 6) {
		print "outside its lane: " $0 >"/dev/stderr"; bad = 1 }
	  if (x[n] + w[n] > xmax + xmax / 1.01 / plot_px / 2) { print "past the right edge: " $0 >"/dev/stderr"; bad = 1 }
	  if (x[n] + w[n] > xmax - xmax / 1.01 / plot_px) edge++
	  if (!((l[n], y[n]) in row)) { row[l[n], y[n]] = 1; if (++rows[l[n]] > most) most = rows[l[n]] } }
	END { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
		if (l[i] == l[j] && y[i] != y[j] && x[i] < x[j] + w[j] && x[j] < x[i] + w[i] &&
		    (y[i] > y[j] ? y[i] - y[j] : y[j] - y[i]) * px < 16) {
			printf "rows %.1f pixels apart: %s at %s and %s\n", (y[i] - y[j]) * px, x[i], y[i], y[j] >"/dev/stderr"
			bad = 1 }
	      print most + 0, edge + 0; exit bad }' "$1/above.d" || fail "the rows of labels above the boxes touch or leave their lane ($1)"
	sed -n 's/^set label [0-9]* "no event\\n\([0-9.]*\) ms" at \([-0-9.]*\), \([0-9.]*\) .*/\1 \2 \3/p' "$1/axis" >"$1/bands"
	[ "$(wc -l <"$1/bands")" -eq "$(grep -c '^set object' "$1/axis")" ] || fail "a band without its label: $(cat "$1/axis")"
	awk -v unit="$xmax" -v plot_px="$plot_px" '{ n++; x[n] = $2; y[n] = $3; w[n] = 56 * unit / 1.01 / plot_px }
	END { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
		if (y[i] == y[j] && (x[i] > x[j] ? x[i] - x[j] : x[j] - x[i]) < (w[i] + w[j]) / 2) { print "bands " i " and " j; bad = 1 }
	      exit bad }' "$1/bands" || fail "the labels of two bands overlap ($1)"
}
placed "$work/tl" >/dev/null
# the same on a timeline made to need them: three calls that start within 2 us on one kernel
# thread (their labels stack three rows high) and two more at the right edge
{
	echo '{"traceEvents":['
	for e in "11 100.000 0.300 laio_poll" "11 100.500 0.700 write" "11 101.300 6.000 write h1" \
		"12 0.000 198.000 write" "11 199.000 0.300 laio_poll" "11 199.500 0.500 write"; do
		set -- $e
		printf '{"ph":"X","cat":"laio","name":"%s","pid":1,"tid":%s,"ts":%s,"dur":%s,"args":{%s}},\n' \
			"$4" "$1" "$2" "$3" "${5:+\"handle\":\"$5\"}"
	done
	echo '{"ph":"M","cat":"laio","name":"thread_name","pid":1,"tid":11,"ts":0.000,"args":{"name":"vp0 runner (kt 11)"}}],"displayTimeUnit":"ms"}'
} >"$work/stack.json"
TIMELINE_DATA="$work/tls" sh scripts/timeline.sh "$work/stack.json" "$work/stack.png" >/dev/null ||
	fail "timeline.sh on $work/stack.json"
set -- $(placed "$work/tls")
[ "$1" -ge 3 ] && [ "$2" -ge 1 ] ||
	fail "the made timeline stacks $1 rows (not 3) and ends $2 labels at the right edge: $(cat "$work/tls/above.d")"
first=$(awk 'NR == 1 { print $1 }' "$work/tl/spans.d")
TIMELINE_DATA="$work/tlw" sh scripts/timeline.sh "$work/paper.json" "$work/window.png" t 0 1 >/dev/null ||
	fail "timeline.sh with the window 0 to 1 ms"
wspans=$(wc -l <"$work/tlw/spans.d")
[ "$wspans" -lt "$spans" ] || fail "the window 0-1 ms kept all $spans boxes"
if sh scripts/timeline.sh "$work/paper.json" "$work/none.png" t 100000 100001 >/dev/null 2>"$work/none.err"; then
	fail "an empty window drew a picture"
fi
grep -q 'no spans' "$work/none.err" || fail "an empty window: $(cat "$work/none.err")"
ok "timeline: $spans boxes, one label each, no two overlapping, rows apart and inside their lanes; the 5 ms wait a band; a key for each kind of box, mark and arrow; window 0-1 ms: $wspans boxes; an empty window refused (first box at $first)"
