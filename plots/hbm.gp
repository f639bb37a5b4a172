# hbm.gp: measured HBM bytes (read + write, CUPTI) vs the ideal bytes, vs sequence length.
# gnuplot -e "in='hbm_op.dat'; out='hbm_op.png'; title='...'; n=3; dts='1 2 3'; xmin=1024; xmax=65536" hbm.gp
# common.gp sits beside this script: its folder found by string slicing, never a
# shell (`system("dirname ...")` ran whatever quotes or $(...) the path held)
gpdir = ARG0; gpk = strlen(gpdir)
while (gpk > 0 && gpdir[gpk:gpk] ne '/') { gpk = gpk - 1 }
gpdir = gpk > 1 ? gpdir[1:gpk-1] : (gpk == 1 ? '' : '.')
load (gpdir[1:1] eq '/' || gpdir eq '' ? '' : './') . gpdir . '/common.gp'
set logscale y 10
set format y '%g'
set ytics (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
set ylabel 'HBM traffic per call (GB), read + write'
plot for [i=1:n] in index (i-1) using 1:2 with linespoints dt dash_(i) lc rgb col_(i) pt pt_(i) ps 1.1 lw (dt_(i) == 3 ? 1.5 : 1) title columnheader(1)
