#!/bin/sh
# scripts/results-tables.sh - the tables of docs/results.md, from the CSVs the benchmarks write
# (no figure is copied by hand). Prints Markdown on stdout.
# Usage: sh scripts/results-tables.sh [BUILD_DIR]            the tables on stdout
#        sh scripts/results-tables.sh BUILD_DIR --update FILE the tables replace what stands
#            between the lines "<!-- generated tables -->" and "<!-- end of generated tables -->"
#            of FILE (docs/results.md; `make results` does this). A section ("### ...") whose
#            CSV is absent keeps the text FILE has for it, and the script says so on stderr.
#   BUILD_DIR/pipebench.csv          make bench (or bench-quick)
#   BUILD_DIR/pipebench-unpinned.csv make bench (or bench-quick): the same, nothing pinned
#   BUILD_DIR/handoff.csv            make bench (or bench-quick)
#   BUILD_DIR/bars.txt               make bench (or bench-quick): every figure beside its bar
#   BUILD_DIR/macrobench.csv         make macrobench (or macrobench-quick), with
#   BUILD_DIR/macrobench-machine.txt and BUILD_DIR/macrobench-stats.csv
set -eu
build=${1:-build}
# The sections, each with its CSV and the start of its heading (which --update finds it by).
SECTIONS="pipe:pipebench.csv:### The pipe microbenchmark (
pipe-unpinned:pipebench-unpinned.csv:### The pipe microbenchmark, unpinned
handoff:handoff.csv:### Hand-off latency
bars:bars.txt:### The figures beside their bars
web:macrobench.csv:### The web server"
if [ "${2:-}" = --update ]; then
	file=$3
	out=$(mktemp)
	: >"$out.tables"
	echo "$SECTIONS" | while IFS=: read -r key csv heading; do
		if [ -f "$build/$csv" ]; then
			sh "$0" "$build" "$key" >>"$out.tables"
			continue
		fi
		# no CSV: the section of the last run stays, and says so (once)
		printf 'results: kept "%s" as it was: its CSV is not in the build directory\n' \
			"$heading" >&2
		awk -v h="$heading" -v csv="$build/$csv" '
			/^<!-- generated tables -->$/ { in_t = 1; next }
			/^<!-- end of generated tables -->$/ { in_t = 0; on = 0 }
			in_t && /^### / { on = index($0, h) == 1; if (on) { print; getline; print; note = 1; next } }
			on && note && /^\*Kept from an earlier run/ { print; getline; print; note = 0; next }
			on && note { print "*Kept from an earlier run: `" csv "` was absent when these tables were last regenerated.*\n"; note = 0 }
			on { print }' "$file" >>"$out.tables"
	done
	awk -v tables="$out.tables" '
		function key(h) { sub(/ *\(`.*/, "", h); return h }
		function take(text, into, order,    n, i, k, lines) {
			n = split(text, lines, "\n"); k = ""
			if (n > 0 && lines[n] == "") n--  # the text ends with a newline
			for (i = 1; i <= n; i++) {
				if (lines[i] ~ /^### /) { k = key(lines[i]); order[++order[0]] = k }
				if (k != "") into[k] = into[k] lines[i] "\n"
			}
		}
		BEGIN { while ((getline l < tables) > 0) fresh = fresh l "\n" }
		/^<!-- generated tables -->$/ { print; skip = 1; next }
		/^<!-- end of generated tables -->$/ {
			take(old, was, oldorder); take(fresh, now, neworder)
			for (i = 1; i <= oldorder[0]; i++) {
				k = oldorder[i]
				if (k in now) printf "%s", now[k]
				else {
					printf "%s", was[k]
					printf "results: kept \"%s\" as it was: its CSV is not in the build directory\n", k > "/dev/stderr"
				}
				done[k] = 1
			}
			for (i = 1; i <= neworder[0]; i++) if (!(neworder[i] in done)) printf "%s", now[neworder[i]]
			skip = 0
		}
		skip { old = old $0 "\n"; next }
		{ print }' "$file" >"$out"
	mv "$out" "$file"
	rm -f "$out.tables"
	exit 0
fi
only=${2:-all}   # one section (pipe, pipe-unpinned, handoff, bars, web) or all

pipe_tables() {
	awk '
	# one CSV line into f[1..]: fields may be quoted and hold commas
	function csv(line, f,    n, q, c, i, cur) {
		n = 0; q = 0; cur = ""
		for (i = 1; i <= length(line); i++) {
			c = substr(line, i, 1)
			if (c == "\"") q = !q
			else if (c == "," && !q) { f[++n] = cur; cur = "" }
			else cur = cur c
		}
		f[++n] = cur
		return n
	}
	NR == 1 { nc = csv($0, h); for (i = 1; i <= nc; i++) col[h[i]] = i; next }
	{
		csv($0, g)
		m = g[col["mode"]]; n[m]++; row[m, n[m]] = $0
		machine = g[col["cpu_model"]] ", kernel " g[col["kernel"]] ", root " g[col["root"]] \
			  ", perf_event_paranoid " g[col["perf_event_paranoid"]] ", reader " \
			  g[col["reader_cpu"]] ", writer " g[col["writer_cpu"]]
		rounds = g[col["rounds"]]
	}
	END {
		print "Machine: " machine "; " rounds " rounds, variants interleaved; medians over rounds, spread = min-max of the rounds.\n"
		for (k = 0; k < 2; k++) {
			m = k == 0 ? "full" : "empty"
			u = k == 0 ? "ns" : "us"; d = k == 0 ? 1 : 1000
			print "Pipe **" m "** (" (k == 0 ? "no read blocks" : "every read blocks") "):\n"
			print "| variant | " u "/read | spread | x raw | x NB | x AIO | x io_uring | paper | notes |"
			print "|---|---:|---:|---:|---:|---:|---:|---|---|"
			for (i = 1; i <= n[m]; i++) {
				delete f
				csv(row[m, i], f)
				if (f[col["status"]] != "ok") { print "| " f[col["variant"]] " | - | | | | | | | " f[col["status"]] " |"; continue }
				note = f[col["detector"]] != "" ? "detector " f[col["detector"]] ", blocked " sprintf("%.1f%%", 100 * f[col["blocked_share"]]) : ""
				printf "| %s | %.*f | %.*f-%.*f | %.2f | %.2f | %.2f | %.2f | %s | %s |\n", f[col["variant"]],
					k, f[col["median_ns"]] / d, k, f[col["min_ns"]] / d, k, f[col["max_ns"]] / d,
					f[col["ratio_raw"]], f[col["ratio_nb"]], f[col["ratio_aio"]], f[col["ratio_uring"]],
					f[col["paper"]], note
			}
			print ""
		}
	}' "$1"
}

macro_tables() {
	[ -f "$build/macrobench-machine.txt" ] && sed 's/^/    /' "$build/macrobench-machine.txt" && echo
	awk -f "$(dirname "$0")/../macrobench/medians.awk" "$build/macrobench.csv" | awk -F, '
	{
		k = $1 SUBSEP $2
		if (!(k in best) || $5 + 0 > best[k] + 0) {
			best[k] = $5; lo[k] = $6; hi[k] = $7; at[k] = $3; p99[k] = $8; cpu[k] = $9; idle[k] = $10; oth[k] = $11
			used[k] = $4 "/" ($4 + $12)
		}
		if (!($1 in seen)) { seen[$1] = 1; sets[++ns] = $1 }
		if (!(($1, $2) in sa)) { sa[$1, $2] = 1; archs[$1, ++na[$1]] = $2 }
	}
	END {
		print "Peak throughput: for each connection count the median over the repetitions, then the best"
		print "connection count; spread = min-max of the repetitions there; a repetition during which other"
		print "processes took more than half of the server'"'"'s CPUs is left out (repetitions: used/run). Server"
		print "CPU: % of one CPU while wrk ran, normal threads / idle-class threads (LAIO'"'"'s standby, which"
		print "runs only when its CPU has nothing else); others: % of the server'"'"'s CPUs that other processes"
		print "used meanwhile (median).\n"
		for (s = 1; s <= ns; s++) {
			set = sets[s]; top = ""; topv = 0
			for (a = 1; a <= na[set]; a++) {
				x = archs[set, a]
				if (x != "LAIO-LAIO" && best[set, x] + 0 > topv) { topv = best[set, x]; top = x }
			}
			print "Set **" set "**:\n"
			print "| architecture | peak requests/s | spread | repetitions | at connections | p99 there (ms) | server CPU % | others % | / best other |"
			print "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
			for (a = 1; a <= na[set]; a++) {
				x = archs[set, a]
				printf "| %s | %.0f | %.0f-%.0f | %s | %s | %.1f | %s / %s | %s | %.2f |\n", x, best[set, x], lo[set, x],
					hi[set, x], used[set, x], at[set, x], p99[set, x], cpu[set, x], idle[set, x], oth[set, x],
					topv ? best[set, x] / topv : 0
			}
			print "\nBest architecture other than LAIO-LAIO: " top "; LAIO-LAIO / " top " = " \
				sprintf("%.2f", topv ? best[set, "LAIO-LAIO"] / topv : 0) ".\n"
		}
	}'
	if [ -f "$build/macrobench-stats.csv" ]; then
		echo "Disk calls (open, fstat, pread) that blocked, from each LAIO server's counters at exit, summed over"
		echo "the repetitions:"
		echo
		echo "| set | architecture | disk calls | blocked | share | detector |"
		echo "|---|---|---:|---:|---:|---|"
		awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
		$col["disk_blocked"] ~ /^[0-9]+$/ {
			k = $1 "," $2; if (!(k in n)) order[++nk] = k
			n[k] += $col["disk_calls"]; b[k] += $col["disk_blocked"]
			d[k] = "detector" in col ? $col["detector"] : "-"
		}
		END { for (i = 1; i <= nk; i++) { k = order[i]; split(k, f, ",")
			printf "| %s | %s | %d | %d | %.1f%% | %s |\n", f[1], f[2], n[k], b[k], n[k] ? 100 * b[k] / n[k] : 0, d[k] } }' \
			"$build/macrobench-stats.csv"
		echo
	fi
}

if [ -f "$build/pipebench.csv" ] && { [ $only = all ] || [ $only = pipe ]; }; then
	echo "### The pipe microbenchmark (\`$build/pipebench.csv\`)"
	echo
	pipe_tables "$build/pipebench.csv"
fi
if [ -f "$build/pipebench-unpinned.csv" ] && { [ $only = all ] || [ $only = pipe-unpinned ]; }; then
	echo "### The pipe microbenchmark, unpinned (\`$build/pipebench-unpinned.csv\`): reader and writer process free to run anywhere"
	echo
	pipe_tables "$build/pipebench-unpinned.csv"
fi
if [ -f "$build/handoff.csv" ] && { [ $only = all ] || [ $only = handoff ]; }; then
	echo "### Hand-off latency (\`$build/handoff.csv\`): laio_syscall() entry -> EINPROGRESS"
	echo
	echo "An empty pipe whose byte comes from the same thread or from another process; last, a 2 ms"
	echo "nanosleep after 20 ms without a call. Placements: pinned (the program on CPU 0), unpinned, busy"
	echo "(unpinned, one CPU-bound process per CPU beside it)."
	echo
	awk -F, 'NR == 2 { m = $13 ", " $14 " CPUs, kernel " $15 ", root " $12; gsub(/"/, "", m)
		  print "Machine: " m ".\n"
		  print "| placement | data from | detector | used | samples | median (us) | p90 (us) | p99 (us) | max (us) | completion p50 (us) | missed blocks |"
		  print "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|" }
		NR > 1 { printf "| %s | %s | %s | %s | %s | %.1f | %.1f | %.1f | %.1f | %.1f | %s |\n", $1, $2, $3, $4, $5, $6 / 1e3, $7 / 1e3, $8 / 1e3, $9 / 1e3, $10 / 1e3, $11 }' "$build/handoff.csv"
	echo
fi
if [ -f "$build/bars.txt" ] && { [ $only = all ] || [ $only = bars ]; }; then
	echo "### The figures beside their bars (\`$build/bars.txt\`)"
	echo
	echo '```'
	cat "$build/bars.txt"
	echo '```'
	echo
fi
if [ -f "$build/macrobench.csv" ] && { [ $only = all ] || [ $only = web ]; }; then
	echo "### The web server (\`$build/macrobench.csv\`)"
	echo
	macro_tables
fi
