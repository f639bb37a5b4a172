# common.gp: shared setup for the chela-bench charts (loaded by time.gp etc.).
# Expects in, out, title, sub (second title line), n, dts, xmin, xmax (chela-bench plot passes them with -e).
if (!exists("in"))    in    = 'time_linear_attn.dat'
if (!exists("out"))   out   = 'chart.png'
if (!exists("title")) title = ''
if (!exists("sub"))   sub   = ''
if (!exists("n"))     n     = 1
if (!exists("dts"))   dts   = '1'
if (!exists("xmin"))  xmin  = 1024
if (!exists("xmax"))  xmax  = 65536
ext = out[strlen(out)-2:]
if (ext eq 'png') set terminal pngcairo size 640,500 enhanced font 'DejaVu Sans,12' linewidth 2
if (ext eq 'svg') set terminal svg size 640,500 enhanced font 'DejaVu Sans,12' linewidth 2 background '#ffffff'
if (ext eq 'pdf') set terminal pdfcairo size 5in,3.75in enhanced font 'DejaVu Sans,10' linewidth 2
set output out
set datafile separator "\t"
set title (strlen(sub) ? title."\n".sub : title) noenhanced font ',11'
# legend below the plot: it never covers data, whatever the series do
set key noenhanced outside below center horizontal maxrows 3 Left reverse nobox samplen 2.5 spacing 1.0 font ',10.5'
set grid xtics ytics lc rgb '#dddddd' lw 1 dt solid
set border 3 lw 1
set tics nomirror out
set logscale x 2
set xrange [xmin/1.4:xmax*1.4]   # pad so first/last tics are not clipped
set xtics ()
do for [k=4:24] { v = 2**k; if (v >= xmin/1.01 && v <= xmax*1.01) { set xtics add ((v >= 1024 ? sprintf('%dk', v/1024) : sprintf('%d', v)) v) } }
set xlabel "Sequence length T (tokens per sequence)\n"   # the blank 2nd line keeps the legend below off the label
# per-series style: colour + point type by index, dash type from dts
# (1 = CHELA kernel, solid; 2 = baseline, dashed; 3 = ideal / reference line, dotted black; 4 = reference)
cols = '#1f77b4 #d62728 #2ca02c #ff7f0e #9467bd #8c564b #e377c2 #17becf #7f7f7f #bcbd22'
pts  = '7 5 9 13 11 15 4 6 8 10'
dt_(i)  = word(dts, i) + 0
col_(i) = dt_(i) == 3 ? '#000000' : word(cols, (i-1) % 10 + 1)
ipts = '1 2 3 6 4 8 10 12 14'   # open / line symbols for the black ideal lines
pt_(i)  = dt_(i) == 3 ? word(ipts, (i-1) % 9 + 1) + 0 : word(pts, (i-1) % 10 + 1) + 0
dash_(i) = dt_(i) == 3 ? 3 : dt_(i)
