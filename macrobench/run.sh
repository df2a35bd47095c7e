#!/bin/bash
# run.sh quick|full - the web-server experiment: every architecture and nginx, the "rice" set
# (fits in memory, warm cache) and the "berkeley" set (larger than the server's memory cgroup,
# cold cache), wrk replaying the trace at several concurrencies. Loopback only; every load run
# is bounded. The server and wrk run on disjoint CPUs (PLACEMENT=pinned, the default), as the
# paper's clients ran on other machines; PLACEMENT=shared lets both use every CPU.
set -u
MODE=${1:-quick}
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${BUILD:-$HERE/../build}
OUT=$BUILD/macrobench
SERVER=$OUT/server
ARCHS=${ARCHS:-"NB-B LAIO-LAIO NB-LAIO NB-AMTED io_uring nginx-sendfile nginx-aio"}
SETS=${SETS:-"rice berkeley"}
MEM_LIMIT=${MEM_LIMIT:-256M}
RICE_MIB=${RICE_MIB:-64}
BERKELEY_MIB=${BERKELEY_MIB:-1536}
READ_IOPS=${READ_IOPS:-0}          # >0: also throttle the server's reads (blkio) to this many IOPS
NGINX_PORT=${NGINX_PORT:-18481}
PLACEMENT=${PLACEMENT:-pinned}
if [ "$MODE" = full ]; then
	CONNS=${CONNS:-"16 64 256"}; DUR=${DUR:-8}; REPS=${REPS:-3}
else
	CONNS=${CONNS:-"16 64"}; DUR=${DUR:-5}; REPS=${REPS:-1}
fi
CSV=$BUILD/macrobench.csv
STATS=$BUILD/macrobench-stats.csv
MACHINE=$BUILD/macrobench-machine.txt
command -v wrk >/dev/null || { echo "wrk missing: apt-get install -y wrk"; exit 1; }
[ -x "$SERVER" ] || { echo "$SERVER missing: make -C macrobench"; exit 1; }
if ! command -v nginx >/dev/null; then
	echo "nginx missing (apt-get install -y nginx-light): its rows are left out"
	ARCHS=$(echo $ARCHS | tr ' ' '\n' | grep -v '^nginx' | tr '\n' ' ')
fi

# --- placement: which CPUs the server (and every thread it makes) and wrk may use ----------
NCPU=$(nproc)
if [ "$PLACEMENT" = pinned ] && [ "$NCPU" -lt 2 ]; then
	echo "placement: one CPU, so the server and wrk share it (PLACEMENT=shared)"; PLACEMENT=shared
fi
half=$((NCPU / 2))
span() { [ "$1" = "$2" ] && echo "$1" || echo "$1-$2"; }
SERVER_CPUS=${SERVER_CPUS:-$(span 0 $((half - 1)))}
CLIENT_CPUS=${CLIENT_CPUS:-$(span $half $((NCPU - 1)))}
ncpus() { echo "$1" | tr ',' '\n' | awk -F- '{ n += NF == 2 ? $2 - $1 + 1 : 1 } END { print n }'; }
SERVER_PIN=() CLIENT_PIN=()
if [ "$PLACEMENT" = pinned ]; then
	SERVER_PIN=(taskset -c "$SERVER_CPUS") CLIENT_PIN=(taskset -c "$CLIENT_CPUS")
	NSERVER=$(ncpus "$SERVER_CPUS")
	PLACE_TEXT="pinned: server on CPUs $SERVER_CPUS (its threads too), wrk on CPUs $CLIENT_CPUS"
else
	NSERVER=$NCPU
	PLACE_TEXT="shared: the server and wrk both on all $NCPU CPUs (the load generator competes with the server)"
fi
echo "placement: $PLACE_TEXT"

# --- cgroups: the server's memory (berkeley is cold only if it can be limited) and CPUs ----
# cgroup v1 (memory, cpuset, blkio hierarchies) or v2 (unified: memory.max, cpuset.cpus,
# io.max). CGROUP says which; "none" skips berkeley rather than run it warm under its name.
# The cpuset keeps threads the kernel makes for the server (io_uring's io-wq workers) on its
# CPUs, which taskset alone does not.
ROOT=0; [ "$(id -u)" = 0 ] && ROOT=1
CGROUP=none CG= PROCS= MEMFILE=
read_dev() {  # MAJ:MIN of the disk holding $BUILD, for the read throttle
	local d
	d=$(lsblk -no MAJ:MIN "$(df --output=source "$BUILD" | tail -1)" 2>/dev/null | head -1 | tr -d ' ')
	echo "${d%:*}:0"
}
limit_v1() {
	local m=/sys/fs/cgroup/memory c=/sys/fs/cgroup/cpuset/laio-macrobench b=/sys/fs/cgroup/blkio/laio-macrobench
	[ -w $m ] || return 1
	CG=$m/laio-macrobench MEMFILE=$CG/memory.limit_in_bytes
	mkdir -p $CG && echo "$MEM_LIMIT" > $MEMFILE || return 1
	[ "$(cat $MEMFILE)" -lt $((1 << 50)) ] || return 1
	PROCS=$CG/cgroup.procs
	if [ "$PLACEMENT" = pinned ] && mkdir -p $c 2>/dev/null; then
		cat /sys/fs/cgroup/cpuset/cpuset.mems > $c/cpuset.mems && echo "$SERVER_CPUS" > $c/cpuset.cpus &&
			PROCS="$PROCS $c/cgroup.procs"
	fi
	# a throttle left by an earlier run with READ_IOPS set would still hold the server back
	[ -d $b ] && [ "$READ_IOPS" -eq 0 ] && rmdir $b 2>/dev/null
	if [ "$READ_IOPS" -gt 0 ]; then
		mkdir -p $b && echo "$(read_dev) $READ_IOPS" > $b/blkio.throttle.read_iops_device || return 1
		PROCS="$PROCS $b/cgroup.procs"
	fi
	CGROUP=v1
}
limit_v2() {
	local u=${CGROUP_V2_ROOT:-/sys/fs/cgroup}  # overridable to check this path on a v1 machine
	[ -f $u/cgroup.controllers ] || return 1
	grep -qw memory $u/cgroup.controllers || return 1
	grep -qw memory $u/cgroup.subtree_control || echo +memory > $u/cgroup.subtree_control || return 1
	CG=$u/laio-macrobench MEMFILE=$CG/memory.max PROCS=$CG/cgroup.procs
	mkdir -p $CG && echo "$MEM_LIMIT" > $MEMFILE || return 1
	[ -f $CG/memory.swap.max ] && echo 0 > $CG/memory.swap.max   # no swap: evicted means reread
	if [ "$PLACEMENT" = pinned ] && grep -qw cpuset $u/cgroup.controllers; then
		{ grep -qw cpuset $u/cgroup.subtree_control || echo +cpuset > $u/cgroup.subtree_control; } &&
			echo "$SERVER_CPUS" > $CG/cpuset.cpus
	fi
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
echo "memory limit for the server: cgroup $CGROUP${CG:+ ($CG, $MEM_LIMIT on berkeley, none on rice)}"
set_mem() { # set: berkeley is limited, rice is not (its files stay cached)
	[ -n "$MEMFILE" ] || return 0
	if [ "$1" = berkeley ]; then echo "$MEM_LIMIT" > "$MEMFILE"
	elif [ $CGROUP = v2 ]; then echo max > "$MEMFILE"
	else echo -1 > "$MEMFILE"; fi
}

gen_set() { # name MiB
	local d=$BUILD/macrobench-data/$1
	if [ ! -f "$d/.done-$2" ]; then
		rm -rf "$d"; mkdir -p "$d"; "$OUT/gen" "$d" "$2" 200000 || exit 1
		touch "$d/.done-$2"
	fi
}

# --- the servers ---------------------------------------------------------------------------
nginx_conf() { # arch dir -> the configuration file of one nginx row
	local f=$OUT/$1.conf io="sendfile on; tcp_nopush on;"
	# nginx's thread pool reads the file while the worker serves other connections
	[ "$1" = nginx-aio ] && io="sendfile off; aio threads; output_buffers 2 64k;"
	cat > "$f" <<-EOF
	worker_processes $NSERVER;
	daemon off;
	master_process on;
	user root;
	pid $OUT/$1.pid;
	error_log $OUT/$1-error.log warn;
	worker_rlimit_nofile 65536;
	events { worker_connections 4096; }
	http {
		default_type application/octet-stream;
		access_log off;
		$io
		tcp_nodelay on;
		keepalive_requests 10000000;
		keepalive_timeout 65s;
		server {
			listen 127.0.0.1:$NGINX_PORT;
			root $2;
		}
	}
	EOF
	echo "$f"
}
pid=0 port=0
start_server() { # set arch dir log: sets pid and port; 1 if it did not start
	local set=$1 arch=$2 dir=$3 log=$4
	local cmd=("$SERVER" --root "$dir" --arch "$arch")
	[ "${arch#nginx}" != "$arch" ] && cmd=(nginx -c "$(nginx_conf "$arch" "$dir")")
	set_mem "$set"
	sh -c 'for f in '"$PROCS"'; do echo $$ > $f; done; exec "$@"' sh "${SERVER_PIN[@]}" "${cmd[@]}" > "$log" 2>&1 &
	pid=$!
	port=
	for _ in $(seq 50); do
		if [ "${arch#nginx}" != "$arch" ]; then
			(exec 3<>/dev/tcp/127.0.0.1/$NGINX_PORT) 2>/dev/null && port=$NGINX_PORT
		else
			port=$(awk '/listening on/{print $3}' "$log")
		fi
		[ -n "$port" ] && return 0
		sleep 0.1
	done
	return 1
}
server_pids() { echo $pid $(pgrep -P $pid); }
cpu_ticks() { # user + system time of the server's processes, in clock ticks: "normal idle", the
	# second the idle-class threads' (LAIO's standby runs only on a CPU that has nothing else)
	local p t s=0 i=0
	for p in $(server_pids); do
		[ -r /proc/$p/stat ] && s=$((s + $(sed 's/.*) //' /proc/$p/stat | awk '{ print $12 + $13 }')))
		for t in /proc/$p/task/*; do
			i=$((i + $(sed 's/.*) //' $t/stat 2>/dev/null | awk '{ print $39 == 5 ? $12 + $13 : 0 }')))
		done
	done
	echo $((s - i)) $i
}
cpu_list() { echo "$1" | tr ',' '\n' | awk -F- '{ for (i = $1; i <= (NF == 2 ? $2 : $1); i++) printf "%d ", i }'; }
SERVER_CPU_LIST=$(cpu_list "$SERVER_CPUS"); [ "$PLACEMENT" = pinned ] || SERVER_CPU_LIST=$(cpu_list "0-$((NCPU - 1))")
server_cpus_ticks() { # busy and total time of the server's CPUs (/proc/stat), whoever used them
	awk -v l=" $SERVER_CPU_LIST" '$1 ~ /^cpu[0-9]/ && index(l, " " substr($1, 4) " ") {
		b += $2 + $3 + $4 + $7 + $8 + $9; t += $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 } END { print b, t }' /proc/stat
}
threads_of() { # each kind of thread of the server and the CPUs it may run on
	local p t
	for p in $(server_pids); do
		for t in /proc/$p/task/*; do
			echo "$(sed 's/-[0-9]*$//' $t/comm 2>/dev/null) $(awk '/Cpus_allowed_list/{print $2}' $t/status 2>/dev/null)"
		done
	done | sort | uniq -c | awk '{ printf "%s%s x%d on CPUs %s", sep, $2, $1, $3; sep = "; " }'
}
HZ=$(getconf CLK_TCK)

# --- the run -------------------------------------------------------------------------------
echo "set,arch,conns,rep,requests,throughput_rps,mib_s,lat_mean_ms,lat_p50_ms,lat_p99_ms,errors,server_cpu_pct,idle_class_cpu_pct,others_on_server_cpus_pct" > "$CSV"
echo "set,arch,rep,disk_calls,disk_blocked,blocked_share,detector" > "$STATS"
load() { cut -d' ' -f1-3 /proc/loadavg; }
# the machine, beside the figures (scripts/results-tables.sh prints it with every table)
{
	echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
	echo "cpu: $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1), $NCPU CPUs"
	echo "kernel: $(uname -r)"
	echo "root: $ROOT; mode: $MODE; memory limit: $MEM_LIMIT on berkeley (cgroup $CGROUP); connections: $CONNS; $DUR s per point; $REPS repetitions, architectures interleaved"
	echo "placement: $PLACE_TEXT"
	echo "load average at the start: $(load)"
} > "$MACHINE"
npoints=0; for _ in $SETS; do for _ in $ARCHS; do for _ in $CONNS; do npoints=$((npoints + 1)); done; done; done
echo "$REPS x $npoints points of $DUR s: about $(( (REPS * npoints * (DUR + 1) + 59) / 60 )) min of load"

for set in $SETS; do
	if [ $set = berkeley ] && [ $CGROUP = none ]; then
		echo "berkeley: skipped: the server's memory could not be limited (needs root and a memory" \
			"cgroup, v1 or v2), so the set would run warm, not cold"; continue
	fi
	[ $set = rice ] && gen_set rice "$RICE_MIB" || gen_set berkeley "$BERKELEY_MIB"
	DIR=$BUILD/macrobench-data/$set
	for rep in $(seq "$REPS"); do
		# each repetition starts with another architecture, so none always runs first
		order=$(echo $ARCHS | tr ' ' '\n' | awk -v r=$rep '{ a[NR] = $0 } END { for (i = 0; i < NR; i++) print a[(i + r - 1) % NR + 1] }')
		for arch in $order; do
			log=$OUT/server-$set-$arch.log
			if [ $set = berkeley ]; then
				sync; echo 1 > /proc/sys/vm/drop_caches      # cold
			else
				cat "$DIR"/d*/* > /dev/null                     # warm
			fi
			if ! start_server $set $arch "$DIR" "$log"; then
				echo "$set $arch: the server did not start"; cat "$log"; kill $pid 2>/dev/null; continue
			fi
			for c in $CONNS; do
				t=$(( c < 2 ? c : 2 ))
				c0=$(cpu_ticks); m0=$(server_cpus_ticks); w0=$(date +%s%N)
				line=$(timeout $((DUR + 20)) "${CLIENT_PIN[@]}" wrk -t$t -c$c -d${DUR}s --timeout 5s \
					-s "$HERE/trace.lua" "http://127.0.0.1:$port/" -- "$DIR/trace.txt" 2>&1 | grep '^CSV,')
				c1=$(cpu_ticks); m1=$(server_cpus_ticks); w1=$(date +%s%N)
				[ -n "$line" ] || line="CSV,0,0,0,0,0,0,0,-1"
				cpu=$(echo "$c0 $c1" | awk -v hz=$HZ -v d=$((w1 - w0)) '{ s = hz * d / 1e9 / 100
					printf "%.0f,%.0f", ($3 - $1) / s, ($4 - $2) / s }')
				# the share of the server's CPUs that went to other processes (others' builds);
				# shared, wrk is among them, so the figure would not say what it means: n/a
				other=$(echo "$m0 $m1 $cpu" | tr ',' ' ' | awk -v n=$(echo $SERVER_CPU_LIST | wc -w) '{
					o = ($3 - $1) / ($4 - $2) * n * 100 - $5 - $6; printf "%.0f", o < 0 ? 0 : o }')
				[ "$PLACEMENT" = pinned ] || other=n/a
				echo "$set,$arch,$c,$rep,${line#CSV,},$cpu,$other" |
					awk -F, -v OFS=, '{ print $1,$2,$3,$4,$5,$7,$8,$9,$10,$11,$12,$13,$14,$15 }' >> "$CSV"
				printf "%-9s %-14s rep %d c=%-4s %s server CPU %s%% (normal, idle-class) others there %s%%\n" $set $arch $rep $c "$line" $cpu $other
				if [ $rep = 1 ] && [ "$c" = "${CONNS%% *}" ]; then
					echo "$set $arch: $(threads_of)" >> "$MACHINE.threads"
				fi
			done
			kill -TERM $pid; wait $pid 2>/dev/null
			s=$(grep '^stats' "$log")
			calls=$(echo "$s" | sed -n 's/.*disk_calls=\([0-9]*\).*/\1/p')
			blk=$(echo "$s" | sed -n 's/.*disk_blocked=\([0-9n/a]*\).*/\1/p')
			share=$(echo "$s" | sed -n 's/.*blocked_share=\([0-9.]*\).*/\1/p')
			det=$(echo "$s" | sed -n 's/.*detector=\([a-z]*\).*/\1/p')
			echo "$set,$arch,$rep,${calls:-n/a},${blk:-n/a},${share:-n/a},${det:-n/a}" >> "$STATS"
		done
	done
done
echo "load average at the end: $(load)" >> "$MACHINE"
if [ -f "$MACHINE.threads" ]; then
	echo "threads of each server and where they may run (first point of the first repetition):" >> "$MACHINE"
	sed 's/^/  /' "$MACHINE.threads" >> "$MACHINE"; rm -f "$MACHINE.threads"
fi

MED=$BUILD/macrobench-medians.csv
awk -f "$HERE/medians.awk" "$CSV" > "$MED"
if command -v gnuplot >/dev/null; then
	for what in throughput cpu; do
		ylab="requests/s (median, bars: min-max)"; [ $what = cpu ] && ylab="server CPU (% of one CPU)"
		{
			echo "set terminal pngcairo size 1200,500 noenhanced; set output '$BUILD/macrobench-$what.png'"
			echo "set datafile separator ','; set logscale x 2; set key top left; set multiplot layout 1,2"
			for set in $SETS; do
				grep -q "^$set," "$MED" || continue
				echo "set title '$set ($PLACEMENT)'; set xlabel 'clients (connections)'; set ylabel '$ylab'"
				p="plot"
				for arch in $ARCHS; do
					if [ $what = cpu ]; then
						p="$p \"< grep '^$set,$arch,' $MED\" using 3:9 with linespoints title '$arch',"
					else
						p="$p \"< grep '^$set,$arch,' $MED\" using 3:5:6:7 with yerrorlines title '$arch',"
					fi
				done
				echo "${p%,}"
			done
			echo "unset multiplot"
		} | gnuplot 2>&1 | grep -v "^$" | head -5
	done
	echo "plots: $BUILD/macrobench-throughput.png $BUILD/macrobench-cpu.png"
fi

echo; echo "placement: $PLACE_TEXT"
echo "peak throughput (requests/s, the best connection count's median over $REPS repetitions, less any during which other processes took over half of the server's CPUs):"
awk -F, '{ k = $1 "," $2; if ($5 + 0 > peak[k]) { peak[k] = $5 + 0; at[k] = $3; cpu[k] = $9 }; sets[$1] = 1 }
END {
	for (k in peak) printf "  %-26s %8.0f at %4s connections, server CPU %3d%%\n", k, peak[k], at[k], cpu[k]
	for (s in sets) {
		best = 0; bn = ""
		for (k in peak) { split(k, a, ","); if (a[1] == s && a[2] != "LAIO-LAIO" && peak[k] > best) { best = peak[k]; bn = a[2] } }
		if (best > 0) printf "%s: LAIO-LAIO / best other (%s) = %.2f\n", s, bn, peak[s ",LAIO-LAIO"] / best
	}
}' "$MED" | sort
echo; echo "share of disk calls that blocked (LAIO architectures, from laio_stats at exit):"
column -t -s, "$STATS"
echo "csv: $CSV (medians: $MED; machine and placement: $MACHINE)"
