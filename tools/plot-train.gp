# plot-train.gp — curves of one or more xcat-train runs from their --csv files.
# usage: gnuplot -e "files='ce.csv sampled.csv'; out='train.png'" tools/plot-train.gp
# Each CSV has: epoch,loss,seconds,samples_per_s,val_ndcg,val_hr (xcat-train --csv).
if (!exists("files")) files = 'train.csv'
if (!exists("out")) out = 'train.png'
set terminal pngcairo size 1200,450 font ",10" noenhanced
set output out
set datafile separator ","
set key top left
set multiplot layout 1,2 title "xcat-train"
set title "training loss"
set xlabel "epoch"
set xtics 1
plot for [f in files] f using 1:2 every ::1 with linespoints title f
set title "validation NDCG@10 (full ranking, seen items excluded)"
plot for [f in files] f using 1:5 every ::1 with linespoints title f
unset multiplot
