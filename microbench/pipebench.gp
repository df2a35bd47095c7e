# pipebench.gp - time per read by variant, pipe full and pipe empty side by side, log scale.
#   gnuplot -e "csv='build/pipebench.csv'; out='build/pipebench.png'; machine='...'" microbench/pipebench.gp
# Bars are the median over rounds; the error bars span the min and max over rounds; a variant
# that was skipped or failed in a mode gets a red label instead of a bar.
# pipebench runs this itself after writing the CSV (see README.md).

if (!exists("csv")) csv = "build/pipebench.csv"
if (!exists("out")) out = "build/pipebench.png"
if (!exists("machine")) machine = "machine not given"

set terminal pngcairo size 1280,640 font ",10"
set output out
set datafile separator ","
set datafile columnheaders

set title "Reading 1 byte through a pipe (bars: median over rounds; whiskers: min-max)\n".machine noenhanced
set logscale y
set ylabel "time per read (ns, log scale)"
set format y "10^{%T}"
set yrange [50:*]
set grid ytics mytics
set xtics rotate by -30 nomirror noenhanced
set offsets 0.6, 0.6, 0, 0
set key top left
set style fill solid 0.75 border -1
bw = 0.38

ok(m) = strcol("status") eq "ok" && strcol("mode") eq m
lbl(x) = x < 1000 ? sprintf("%.0f ns", x) : (x < 1e6 ? sprintf("%.1f us", x / 1e3) : sprintf("%.1f ms", x / 1e6))

plot csv using (ok("full") ? column("idx") - 0.2 : NaN):(column("median_ns")):(column("min_ns")):(column("max_ns")):(bw) \
         with boxerrorbars lc rgb "#4477aa" title "pipe full (no read blocks)", \
     csv using (ok("empty") ? column("idx") + 0.2 : NaN):(column("median_ns")):(column("min_ns")):(column("max_ns")):(bw) \
         with boxerrorbars lc rgb "#ee6677" title "pipe empty (every read blocks)", \
     csv using (ok("full") ? column("idx") - 0.2 : NaN):(column("max_ns") * 1.25):(lbl(column("median_ns"))) \
         with labels font ",8" notitle, \
     csv using (ok("empty") ? column("idx") + 0.2 : NaN):(column("max_ns") * 1.25):(lbl(column("median_ns"))) \
         with labels font ",8" notitle, \
     csv using (strcol("status") ne "ok" ? column("idx") + (strcol("mode") eq "full" ? -0.2 : 0.2) : NaN):(70):(strcol("status")) \
         with labels left rotate by 90 font ",9" textcolor rgb "#cc0000" notitle, \
     csv using (column("idx")):(NaN):xtic(strcol("variant")) with points notitle
