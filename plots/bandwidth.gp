# bandwidth.gp: achieved GB/s (ideal bytes / median time) vs sequence length,
# with the measured copy ceiling (ideal bytes / floor) as a dashed line (ceil=0: none).
# gnuplot -e "in='bandwidth_op.dat'; out='bandwidth_op.png'; title='...'; n=3; dts='1 2 2'; xmin=1024; xmax=65536; ceil=2998" bandwidth.gp
# common.gp sits beside this script: its folder found by string slicing, never a
# shell (`system("dirname ...")` ran whatever quotes or $(...) the path held)
gpdir = ARG0; gpk = strlen(gpdir)
while (gpk > 0 && gpdir[gpk:gpk] ne '/') { gpk = gpk - 1 }
gpdir = gpk > 1 ? gpdir[1:gpk-1] : (gpk == 1 ? '' : '.')
load (gpdir[1:1] eq '/' || gpdir eq '' ? '' : './') . gpdir . '/common.gp'
if (!exists("ceil")) ceil = 0
set ylabel 'Achieved bandwidth (GB/s), log scale'
# log scale: baselines at 1% of the ceiling stay readable beside kernels near it
set logscale y 10
set format y '%g'
if (ceil > 0) {
    set yrange [ceil/1000:ceil*2]
    set arrow 1 from graph 0, first ceil to graph 1, first ceil nohead dt 2 lc rgb '#000000' lw 1.5
    set label 1 sprintf('copy ceiling (ideal bytes / floor) %.0f GB/s', ceil) at graph 0.02, first ceil left offset 0,0.8 font ',10.5'
} else {
    set yrange [*:*]
}
plot for [i=1:n] in index (i-1) using 1:2 with linespoints dt dash_(i) lc rgb col_(i) pt pt_(i) ps 1.1 title columnheader(1)
