# breakdown.gp: stacked stage times of a staged variant (chela-bench --breakdown), one bar
# per sequence length, stages bottom-up in the order they run; the black diamond is the
# whole variant's own median (stages run back to back in one call).
# gnuplot -e "in='breakdown_chela_fused.dat'; out='x.png'; title='...'; sub='...'; n=12" breakdown.gp
# common.gp sits beside this script: its folder found by string slicing, never a
# shell (`system("dirname ...")` ran whatever quotes or $(...) the path held)
gpdir = ARG0; gpk = strlen(gpdir)
while (gpk > 0 && gpdir[gpk:gpk] ne '/') { gpk = gpk - 1 }
gpdir = gpk > 1 ? gpdir[1:gpk-1] : (gpk == 1 ? '' : '.')
load (gpdir[1:1] eq '/' || gpdir eq '' ? '' : './') . gpdir . '/common.gp'
unset logscale x
set xrange [*:*]
set xtics () auto
set title font ',10'
set style data histograms
set style histogram rowstacked gap 1
set boxwidth 0.75 relative
# colour and a fill pattern per stage, so neighbours differ in greyscale too
set style fill solid 0.85 border lc rgb '#333333'
stage_cols = '#1f77b4 #aec7e8 #ff7f0e #ffbb78 #2ca02c #98df8a #d62728 #ff9896 #9467bd #c5b0d5 #8c564b #c49c94 #e377c2 #7f7f7f #bcbd22 #17becf'
scol(i) = word(stage_cols, (i-1) % 16 + 1)
set key noenhanced outside below center horizontal Left reverse nobox samplen 1.5 spacing 1.0 font ',9.5' maxrows 4
set ylabel 'Time per call (ms), median'
set xlabel "Sequence length T\n"
set yrange [0:*]
plot for [i=2:n+1] in using i:xtic(1) title columnheader(i) lc rgb scol(i-1) fs solid (i % 2 ? 0.55 : 0.9), \
     in using (column(0)-1):(column(n+2)) with points pt 13 ps 1.3 lc rgb '#000000' title 'whole call'
