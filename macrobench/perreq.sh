#!/bin/bash
# perreq.sh - where the server's time goes, per request, on the disk-bound set: LAIO-LAIO,
# NB-LAIO and io_uring side by side (ARCHS), each point cold and pinned as run.sh places it,
# the architectures interleaved, ROUNDS rounds at each of CONNS, DUR seconds per point.
# OTHER_SERVER=path adds "LAIO-LAIO-other", LAIO-LAIO served by another build of the server (a
# library before and after a change). Per request: the server's CPU (/proc/PID/stat), the
# voluntary context switches of its threads, and for the LAIO servers the calls that went to
# the background and the claims refused (their counters at exit). PERF=1 also records each
# server's first point with `perf record -g` (build/macrobench/perf-ARCH.data).
# Needs root and the cgroup run.sh sets up: run `make macrobench-quick` once first.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${BUILD:-$HERE/../build}
SERVER=$BUILD/macrobench/server
DIR=$BUILD/macrobench-data/berkeley
ARCHS=${ARCHS:-"LAIO-LAIO NB-LAIO io_uring"}
CONNS=${CONNS:-"16 64"}
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-6}
MEM_LIMIT=${MEM_LIMIT:-256M}
SERVER_CPUS=${SERVER_CPUS:-0}
CLIENT_CPUS=${CLIENT_CPUS:-1}
PERF=${PERF:-0}
CSV=$BUILD/macrobench-perreq.csv
[ "$(id -u)" = 0 ] || { echo "perreq.sh: needs root (cold cache, memory cgroup)"; exit 1; }
[ -x "$SERVER" ] && [ -f "$DIR/trace.txt" ] || { echo "perreq.sh: run make macrobench-quick first"; exit 1; }
[ -n "${OTHER_SERVER:-}" ] && ARCHS="$ARCHS LAIO-LAIO-other"

# the memory (and cpuset) cgroup run.sh made: v2 first, as run.sh tries it
v2=/sys/fs/cgroup/laio-macrobench v1=/sys/fs/cgroup/memory/laio-macrobench
if [ -f $v2/memory.max ]; then
	echo "$MEM_LIMIT" > $v2/memory.max; PROCS=$v2/cgroup.procs
elif [ -f $v1/memory.limit_in_bytes ]; then
	echo "$MEM_LIMIT" > $v1/memory.limit_in_bytes; PROCS=$v1/cgroup.procs
	[ -f /sys/fs/cgroup/cpuset/laio-macrobench/cgroup.procs ] &&
		PROCS="$PROCS /sys/fs/cgroup/cpuset/laio-macrobench/cgroup.procs"
else
	echo "perreq.sh: no laio-macrobench memory cgroup: run make macrobench-quick first"; exit 1
fi

switches() { # voluntary context switches of the server's threads so far
	cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^voluntary_ctxt_switches/ { s += $2 } END { print s + 0 }'
}
ticks() { sed 's/.*) //' /proc/"$1"/stat | awk '{ print $12 + $13 }'; }
bgline() { grep -h '^\(stats \)\?background' "$1"; } # per kind (older servers: "stats background")
counter() { # log key: the number after key= in the server's exit counters (0 if absent)
	grep -h '^stats' "$1" | grep -o "$2=[0-9]*" | head -1 | cut -d= -f2 | grep . || echo 0
}

# one point: arch conns round -> a CSV line
point() {
	local arch=$1 c=$2 r=$3 bin=$SERVER name=$1 log pid port line
	[ "$arch" = LAIO-LAIO-other ] && { bin=$OTHER_SERVER; arch=LAIO-LAIO; }
	log=$BUILD/macrobench/perreq-$name.log
	sync; echo 1 > /proc/sys/vm/drop_caches
	sh -c 'for f in '"$PROCS"'; do echo $$ > $f; done; exec "$@"' sh taskset -c "$SERVER_CPUS" \
		"$bin" --root "$DIR" --arch "$arch" > "$log" 2>&1 &
	pid=$!
	port=
	for _ in $(seq 50); do
		port=$(awk '/listening on/ { print $3 }' "$log"); [ -n "$port" ] && break; sleep 0.1
	done
	[ -n "$port" ] || { kill $pid; echo "$name: the server did not start" >&2; return; }
	local t0 s0 pp=
	t0=$(ticks $pid); s0=$(switches $pid)
	if [ "$PERF" = 1 ] && [ "$r" = 1 ] && [ "$c" = "${CONNS%% *}" ]; then
		perf record -q -g -p $pid -o "$BUILD/macrobench/perf-$name.data" -- sleep "$DUR" 2>/dev/null & pp=$!
	fi
	line=$(taskset -c "$CLIENT_CPUS" wrk -t2 -c"$c" -d"${DUR}s" --timeout 5s -s "$HERE/trace.lua" \
		"http://127.0.0.1:$port/" -- "$DIR/trace.txt" 2>&1 | grep '^CSV,')
	local t1 s1
	t1=$(ticks $pid); s1=$(switches $pid)
	[ -n "$pp" ] && wait $pp
	kill -TERM $pid; wait $pid 2>/dev/null
	local req rps
	req=$(echo "$line" | cut -d, -f2); rps=$(echo "$line" | cut -d, -f4)
	[ -n "$req" ] && [ "$req" -gt 0 ] || { echo "$name: no requests served" >&2; return; }
	echo "$r,$c,$name,$rps,$(awk -v t=$((t1 - t0)) -v s=$((s1 - s0)) -v hz="$(getconf CLK_TCK)" -v n="$req" \
		-v bg="$(counter "$log" laio_blocked)" -v rv="$(bgline "$log" | grep -o ' recv=[0-9]*' | cut -d= -f2 | grep . || echo 0)" \
		-v rd="$(counter "$log" disk_blocked)" -v sp="$(bgline "$log" | grep -o 'spurious [0-9]*' | awk '{ s += $2 } END { print s + 0 }')" \
		'BEGIN { printf "%.1f,%.2f,%.3f,%.3f,%.3f,%.3f", t * 1e6 / hz / n, s / n, bg / n, rv / n, rd / n, sp / n }')"
}

echo "round,conns,arch,requests_per_s,cpu_us_per_req,switches_per_req,background_per_req,recv_background_per_req,disk_blocked_per_req,spurious_per_req" > "$CSV"
echo "machine: $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1), $(nproc) CPUs; server on CPUs $SERVER_CPUS, wrk on $CLIENT_CPUS; berkeley cold, $MEM_LIMIT"
for r in $(seq "$ROUNDS"); do
	for c in $CONNS; do
		for a in $ARCHS; do point "$a" "$c" "$r" | tee -a "$CSV"; done
	done
done
echo; echo "medians over $ROUNDS rounds (per request; the background columns are the LAIO servers'):"
awk -F, 'NR > 1 { k = $2 "," $3; if (!(k in seen)) { seen[k] = 1; keys[++nk] = k }
	for (i = 4; i <= 10; i++) v[k, i, ++n[k, i]] = $i }
END {
	printf "%-6s %-16s %10s %8s %9s %10s %6s %6s %9s\n", "conns", "arch", "req/s", "CPU us", "switches", "background", "recv", "disk", "spurious"
	for (j = 1; j <= nk; j++) {
		k = keys[j]; split(k, f, ",")
		printf "%-6s %-16s", f[1], f[2]
		for (i = 4; i <= 10; i++) {
			m = n[k, i]; for (a = 1; a <= m; a++) x[a] = v[k, i, a]
			for (a = 1; a <= m; a++) for (b = a + 1; b <= m; b++) if (x[b] < x[a]) { t = x[a]; x[a] = x[b]; x[b] = t }
			printf " %*s", i == 4 ? 10 : i == 7 ? 10 : 8, x[int((m + 1) / 2)]
		}
		print ""
	}
}' "$CSV"
echo "csv: $CSV"
