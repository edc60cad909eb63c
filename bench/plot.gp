# Chart of bench/run.sh: each workload's rate relative to native (1 = as fast as native), for
# foldfs casefold off, foldfs casefold=all and bindfs. Log scale.
#   gnuplot -e "datafile='chart.dat'; outfile='benchmarks.png'" bench/plot.gp
set terminal pngcairo size 1600,760 noenhanced font "sans,10"
set output outfile
set title "foldfs beside native and bindfs: rate ÷ native rate (higher is better; 1 = native)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y 10
set yrange [0.005:5000]
set ylabel "rate ÷ native (log)"
set grid ytics
set xtics rotate by -35 left nomirror
set bmargin 14
set rmargin 22
set key inside top left horizontal
set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 1.5 dt 2 lc rgb "#444444"
plot datafile using 2:xtic(1) title "foldfs casefold off" lc rgb "#4e79a7", \
     '' using 3 title "foldfs casefold=all" lc rgb "#e15759", \
     '' using 4 title "bindfs" lc rgb "#59a14f"
