# speedup.gp: baseline time / kernel time vs sequence length (same op, same shape).
# gnuplot -e "in='speedup_op.dat'; out='speedup_op.png'; title='...'; n=1; dts='1'; xmin=1024; xmax=65536" speedup.gp
# common.gp sits beside this script: its folder found by string slicing, never a
# shell (`system("dirname ...")` ran whatever quotes or $(...) the path held)
gpdir = ARG0; gpk = strlen(gpdir)
while (gpk > 0 && gpdir[gpk:gpk] ne '/') { gpk = gpk - 1 }
gpdir = gpk > 1 ? gpdir[1:gpk-1] : (gpk == 1 ? '' : '.')
load (gpdir[1:1] eq '/' || gpdir eq '' ? '' : './') . gpdir . '/common.gp'
set logscale y 10
set ytics (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
set ylabel 'Speed-up over baseline (x), log scale'
set yrange [0.5:*]   # the parity line never sits on the axis
# parity (1x), drawn only where it falls inside the autoscaled range
set style line 99 dt 3 lc rgb '#555555' lw 1
plot for [i=1:n] in index (i-1) using 1:2 with linespoints dt dash_(i) lc rgb col_(i) pt pt_(i) ps 1.1 title columnheader(1), \
     1 with lines ls 99 title 'parity (1x)'
