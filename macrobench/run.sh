#!/bin/bash
# run.sh quick|full - the web-server experiment: every architecture, the "rice" set (fits in
# memory, warm cache) and the "berkeley" set (larger than the server's memory cgroup, cold cache),
# wrk replaying the trace at several concurrencies. Loopback only; every load run is bounded.
set -u
MODE=${1:-quick}
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${BUILD:-$HERE/../build}
OUT=$BUILD/macrobench
SERVER=$OUT/server
ARCHS=${ARCHS:-"NB-B LAIO-LAIO NB-LAIO NB-AMTED io_uring"}
SETS=${SETS:-"rice berkeley"}
MEM_LIMIT=${MEM_LIMIT:-256M}
RICE_MIB=${RICE_MIB:-64}
BERKELEY_MIB=${BERKELEY_MIB:-1536}
READ_IOPS=${READ_IOPS:-0}          # >0: also throttle the server's reads (blkio) to this many IOPS
if [ "$MODE" = full ]; then
	CONNS=${CONNS:-"1 4 16 64 128 256 512"}; DUR=${DUR:-15}
else
	CONNS=${CONNS:-"1 16 64"}; DUR=${DUR:-5}
fi
CSV=$BUILD/macrobench.csv
STATS=$BUILD/macrobench-stats.csv
command -v wrk >/dev/null || { echo "wrk missing: apt-get install -y wrk"; exit 1; }
[ -x "$SERVER" ] || { echo "$SERVER missing: make -C macrobench"; exit 1; }

ROOT=0; [ "$(id -u)" = 0 ] && ROOT=1
# The berkeley set is "cold, larger than memory" only if the server's memory can be limited:
# cgroup v1 (memory and blkio hierarchies) or v2 (the unified hierarchy: memory.max, io.max).
# CGROUP says which was used; "none" skips berkeley rather than run it warm under its name.
CGROUP=none CG= BIO=
read_dev() {  # MAJ:MIN of the disk holding $BUILD, for the read throttle
	local d
	d=$(lsblk -no MAJ:MIN "$(df --output=source "$BUILD" | tail -1)" 2>/dev/null | head -1 | tr -d ' ')
	echo "${d%:*}:0"
}
limit_v1() {
	local m=/sys/fs/cgroup/memory
	[ -w $m ] || return 1
	CG=$m/laio-macrobench BIO=/sys/fs/cgroup/blkio/laio-macrobench
	mkdir -p $CG && echo "$MEM_LIMIT" > $CG/memory.limit_in_bytes || return 1
	[ "$(cat $CG/memory.limit_in_bytes)" -lt $((1 << 50)) ] || return 1
	# a throttle left by an earlier run with READ_IOPS set would still hold the server back
	[ -d $BIO ] && [ "$READ_IOPS" -eq 0 ] && rmdir $BIO 2>/dev/null
	if [ "$READ_IOPS" -gt 0 ]; then
		mkdir -p $BIO && echo "$(read_dev) $READ_IOPS" > $BIO/blkio.throttle.read_iops_device || return 1
	fi
	CGROUP=v1
}
limit_v2() {
	local u=${CGROUP_V2_ROOT:-/sys/fs/cgroup}  # overridable to check this path on a v1 machine
	[ -f $u/cgroup.controllers ] || return 1
	grep -qw memory $u/cgroup.controllers || return 1
	grep -qw memory $u/cgroup.subtree_control || echo +memory > $u/cgroup.subtree_control || return 1
	CG=$u/laio-macrobench BIO=$CG
	mkdir -p $CG && echo "$MEM_LIMIT" > $CG/memory.max || return 1
	[ -f $CG/memory.swap.max ] && echo 0 > $CG/memory.swap.max   # no swap: evicted means reread
	if [ "$READ_IOPS" -gt 0 ]; then
		{ grep -qw io $u/cgroup.subtree_control || echo +io > $u/cgroup.subtree_control; } &&
			echo "$(read_dev) riops=$READ_IOPS" > $CG/io.max || return 1
	elif [ -f $CG/io.max ]; then
		echo "$(read_dev) riops=max" > $CG/io.max 2>/dev/null
	fi
	CGROUP=v2
}
if [ $ROOT = 1 ]; then
	limit_v2 2>/dev/null || limit_v1 2>/dev/null || CGROUP=none
fi
echo "memory limit for the server: cgroup $CGROUP${CG:+ ($CG, $MEM_LIMIT)}"

gen_set() { # name MiB
	local d=$BUILD/macrobench-data/$1
	if [ ! -f "$d/.done-$2" ]; then
		rm -rf "$d"; mkdir -p "$d"; "$OUT/gen" "$d" "$2" 200000 || exit 1
		touch "$d/.done-$2"
	fi
}

echo "set,arch,conns,requests,throughput_rps,mib_s,lat_mean_ms,lat_p50_ms,lat_p99_ms,errors" > "$CSV"
# the machine, beside the figures (scripts/results-tables.sh prints it with every table)
{
	echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
	echo "cpu: $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1), $(nproc) CPUs"
	echo "kernel: $(uname -r)"
	echo "root: $ROOT; mode: $MODE; memory limit: $MEM_LIMIT (cgroup $CGROUP); connections: $CONNS; $DUR s per point"
} > "$BUILD/macrobench-machine.txt"
echo "set,arch,disk_calls,disk_blocked,blocked_share" > "$STATS"
for set in $SETS; do
	if [ $set = berkeley ] && [ $CGROUP = none ]; then
		echo "berkeley: skipped: the server's memory could not be limited (needs root and a memory" \
			"cgroup, v1 or v2), so the set would run warm, not cold"; continue
	fi
	[ $set = rice ] && gen_set rice "$RICE_MIB" || gen_set berkeley "$BERKELEY_MIB"
	DIR=$BUILD/macrobench-data/$set
	for arch in $ARCHS; do
		log=$OUT/server-$set-$arch.log
		if [ $set = berkeley ]; then
			sync; echo 1 > /proc/sys/vm/drop_caches      # cold
			sh -c "echo \$\$ > $CG/cgroup.procs; [ $CGROUP = v1 ] && [ $READ_IOPS -gt 0 ] && echo \$\$ > $BIO/cgroup.procs; exec $SERVER --root $DIR --arch $arch" > "$log" 2>&1 &
		else
			cat "$DIR"/d*/* > /dev/null                     # warm
			"$SERVER" --root "$DIR" --arch "$arch" > "$log" 2>&1 &
		fi
		pid=$!
		for _ in $(seq 50); do grep -q listening "$log" && break; sleep 0.1; done
		port=$(awk '/listening on/{print $3}' "$log")
		[ -n "$port" ] || { echo "$arch: server did not start"; cat "$log"; kill $pid; continue; }
		for c in $CONNS; do
			t=$(( c < 2 ? c : 2 ))
			line=$(timeout $((DUR + 20)) wrk -t$t -c$c -d${DUR}s --timeout 5s -s "$HERE/trace.lua" \
				"http://127.0.0.1:$port/" -- "$DIR/trace.txt" 2>&1 | grep '^CSV,')
			[ -n "$line" ] || line="CSV,0,0,0,0,0,0,0,-1"
			echo "$set,$arch,$c,${line#CSV,}" | awk -F, -v OFS=, '{print $1,$2,$3,$4,$6,$7,$8,$9,$10,$11}' >> "$CSV"
			printf "%-9s %-10s c=%-4s %s\n" $set $arch $c "$line"
		done
		kill -TERM $pid; wait $pid 2>/dev/null
		s=$(grep '^stats' "$log")
		calls=$(echo "$s" | sed -n 's/.*disk_calls=\([0-9]*\).*/\1/p')
		blk=$(echo "$s" | sed -n 's/.*disk_blocked=\([0-9n/a]*\).*/\1/p')
		share=$(echo "$s" | sed -n 's/.*blocked_share=\([0-9.]*\).*/\1/p')
		echo "$set,$arch,$calls,$blk,${share:-n/a}" >> "$STATS"
	done
done

if command -v gnuplot >/dev/null; then
	for what in throughput latency; do
		col=5; ylab="requests/s"; [ $what = latency ] && { col=7; ylab="mean latency (ms)"; }
		plots=""
		{
			echo "set terminal pngcairo size 1200,500 noenhanced; set output '$BUILD/macrobench-$what.png'"
			echo "set datafile separator ','; set logscale x 2; set key top left; set multiplot layout 1,2"
			for set in $SETS; do
				grep -q "^$set," "$CSV" || continue
				echo "set title '$set'; set xlabel 'clients (connections)'; set ylabel '$ylab'"
				p="plot"
				for arch in $ARCHS; do
					p="$p \"< grep '^$set,$arch,' $CSV\" using 3:$col with linespoints title '$arch',"
				done
				echo "${p%,}"
			done
			echo "unset multiplot"
		} | gnuplot 2>&1 | grep -v "^$" | head -5
	done
	echo "plots: $BUILD/macrobench-throughput.png $BUILD/macrobench-latency.png"
fi

echo; echo "peak throughput (requests/s) per set and architecture:"
awk -F, 'NR>1 { k=$1","$2; if ($5+0 > peak[k]) peak[k]=$5+0; sets[$1]=1 }
END {
	for (k in peak) printf "  %-24s %10.0f\n", k, peak[k]
	for (s in sets) {
		best=0; bn="";
		for (k in peak) { split(k, a, ","); if (a[1]==s && a[2]!="LAIO-LAIO" && peak[k]>best) { best=peak[k]; bn=a[2] } }
		if (best > 0) printf "%s: LAIO-LAIO / best other (%s) = %.2f\n", s, bn, peak[s",LAIO-LAIO"]/best
	}
}' "$CSV" | sort
echo; echo "share of disk calls that blocked (LAIO architectures, from laio_stats at exit):"
column -t -s, "$STATS"
echo "csv: $CSV"
