# medians.awk - one line per (set, architecture, connections) of build/macrobench.csv: the
# median over the repetitions of throughput, p99 latency and the server's CPU use, with the
# spread (min-max) of the throughput. Used by run.sh's summary and scripts/results-tables.sh,
# so both read the same figures. mawk has no asort: the lists are short, insertion sort.
# A repetition during which other processes took more than OTHERS_MAX % (default 50) of the
# server's CPUs measured them, not the server: it is left out, and counted in the last column.
# Input columns (by name, from the header): set arch conns rep throughput_rps lat_p99_ms
# server_cpu_pct idle_class_cpu_pct others_on_server_cpus_pct. Output (CSV, in the order first seen):
# set,arch,conns,reps,median_rps,min_rps,max_rps,median_p99_ms,median_cpu_pct,median_idle_cpu_pct,
# median_others_pct,left_out
function median(list,    n, v, i, j, t) {
	n = split(list, v, " ")
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
	if (n == 0) return 0
	return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
function lo(list,    n, v, i, m) { n = split(list, v, " "); m = v[1]; for (i = 2; i <= n; i++) if (v[i] + 0 < m + 0) m = v[i]; return m }
function hi(list,    n, v, i, m) { n = split(list, v, " "); m = v[1]; for (i = 2; i <= n; i++) if (v[i] + 0 > m + 0) m = v[i]; return m }
BEGIN { FS = ","; if (OTHERS_MAX == "") OTHERS_MAX = 50 }
NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
{
	k = $col["set"] "," $col["arch"] "," $col["conns"]
	if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
	if ("others_on_server_cpus_pct" in col && $col["others_on_server_cpus_pct"] + 0 > OTHERS_MAX + 0) {
		out[k]++
		next
	}
	rps[k] = rps[k] " " $col["throughput_rps"]
	p99[k] = p99[k] " " $col["lat_p99_ms"]
	cpu[k] = cpu[k] " " ("server_cpu_pct" in col ? $col["server_cpu_pct"] : 0)
	idle[k] = idle[k] " " ("idle_class_cpu_pct" in col ? $col["idle_class_cpu_pct"] : 0)
	busy[k] = busy[k] " " ("others_on_server_cpus_pct" in col ? $col["others_on_server_cpus_pct"] : 0)
	reps[k]++
}
END {
	for (i = 1; i <= nk; i++) {
		k = order[i]
		printf "%s,%d,%.0f,%.0f,%.0f,%.3f,%.0f,%.0f,%.0f,%d\n", k, reps[k], median(rps[k]), lo(rps[k]),
			hi(rps[k]), median(p99[k]), median(cpu[k]), median(idle[k]), median(busy[k]), out[k]
	}
}
