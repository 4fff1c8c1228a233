# bench/plot_hot_path.gp — bar chart of req/s per target of bench/hot_path.sh,
# one bar per run, from the data file the bench writes.
#
#   gnuplot bench/plot_hot_path.gp           # build/bench/hot_path.dat → docs/hot_path.png
#   gnuplot -e "datafile='x.dat'; outfile='x.png'" bench/plot_hot_path.gp
#   PLOT=1 bench/hot_path.sh                 # runs the bench, then this
#
# The data file: comment lines (one is "# runs: N"), a header row ("target" "run 1" "run 2" …),
# then one row per target: "label" rps_run1 rps_run2 …
# (apt-get install -y gnuplot-nox)

if (!exists("datafile")) datafile = 'build/bench/hot_path.dat'
if (!exists("outfile")) outfile = 'docs/hot_path.png'

# how many runs (columns after the label): the bench writes "# runs: N"
runs = int(system(sprintf("sed -n 's/^# runs: *//p' '%s' | head -n1", datafile)))
if (runs < 1) { print "no '# runs: N' line in ".datafile; exit }

set terminal pngcairo size 1000,560 enhanced font 'DejaVu Sans,11'
set output outfile

set title "strata hot path (bench/hot\\_path.sh): requests/s, wrk -t2 -c64, loopback, 2 cores\n{/*0.85 higher is better; (1) is the ceiling: bare h2o 2.2.5 sending the same 2 KB from memory; target lines from the mean over runs}"
set style data histogram
set style histogram clustered gap 1.2
set style fill solid 0.85 border -1
set boxwidth 0.9
set key top right autotitle columnheader
set ylabel 'requests / s'
set format y '%.0s%c'
set yrange [0:*]
set grid ytics lc rgb '#dddddd'
set xtics nomirror scale 0 font ',10' noenhanced
set ytics nomirror
set border 3
set offsets 0, 0, graph 0.12, 0
set bmargin 5

# labels wrap onto two lines, at the first ", " or else the first " (":
# "(3) strata L1 hit, 2 KB identity", "(5) strata miss (--cache false)"
cut(s) = strstrt(s, ', ') > 0 ? strstrt(s, ', ') : strstrt(s[4:], ' (') > 0 ? strstrt(s[4:], ' (') + 3 : 0
wrap(s) = cut(s) > 0 ? s[1:cut(s) - 1] . "\n" . s[cut(s) + (s[cut(s):cut(s) + 1] eq ', ' ? 2 : 1):] : s

# the issue-3 targets as dashed lines, from the mean over runs of (1) and (2)
rowmean(row) = real(system(sprintf("awk -v r=%d -v w=%d '!/^#/ && ++n == w + 1 { s = 0; for (i = NF - r + 1; i <= NF; i++) s += $i; print s / r }' '%s'", runs, row, datafile)))
h2o = rowmean(1)
nginx = rowmean(2)
# the two (3) lines may be close: the label of the higher one goes above it,
# the other's below its line
up1 = 0.85 * h2o >= 1.3 * nginx ? 0.6 : -0.6
set arrow 1 from graph 0, first 0.85 * h2o to graph 1, first 0.85 * h2o nohead dt 2 lw 1.5 lc rgb '#2ca02c' front
set label 1 sprintf('(3) target: 0.85 × (1) = %.1fk', 0.85 * h2o / 1000) at graph 0.995, first 0.85 * h2o right offset 0, up1 font ',9' tc rgb '#2ca02c' front
set arrow 2 from graph 0, first 1.3 * nginx to graph 1, first 1.3 * nginx nohead dt 3 lw 1.5 lc rgb '#9467bd' front
set label 2 sprintf('(3) target: 1.3 × (2) = %.1fk', 1.3 * nginx / 1000) at graph 0.995, first 1.3 * nginx right offset 0, -up1 font ',9' tc rgb '#9467bd' front
set arrow 3 from graph 0, first 0.7 * h2o to graph 1, first 0.7 * h2o nohead dt 4 lw 1.5 lc rgb '#d62728' front
set label 3 sprintf('(4) target: 0.7 × (1) = %.1fk', 0.7 * h2o / 1000) at graph 0.995, first 0.7 * h2o right offset 0, 0.6 font ',9' tc rgb '#d62728' front

colors = "#4c72b0 #dd8452 #8c8c8c #c44e52 #937860 #da8bc3"
plot for [c = 2:runs + 1] datafile using c:xtic(wrap(stringcolumn(1))) title columnheader(c) \
        lc rgb word(colors, c - 1), \
     for [c = 2:runs + 1] datafile using ($0 - 0.45 + (c - 1.5) * 0.9 / runs):c:(sprintf('%.0fk', column(c) / 1000.0)) \
        with labels center offset 0, 0.7 font ',9' notitle
