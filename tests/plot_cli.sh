#!/usr/bin/env bash
# plot_cli.sh: `chela-bench plot` as a user meets it.  A small schema-v1 file
# (tests/fixtures/results_small.csv: H100 rows, two linear_attn shapes, one
# skip:oom row) gives non-empty PNG + SVG files for every chart; bad input
# (missing, malformed, only skipped rows, no gnuplot) exits non-zero with
# exactly one line on stderr.  Data is never code: hostile text in every CSV
# field, and hostile -o / script folder names, run nothing and write nowhere
# else.  A file is never clobbered: a failed chart (gnuplot failing, a cut
# file, a file size limit) leaves the older chart as it was; an output name
# taken by a symlink or directory is refused; the default output is ./charts.
set -u
. "$(dirname "$0")/cli_lib.sh"
B=$(command -v "$B") || { echo "FAIL: $CHELA_BENCH not found"; exit 1; }
case $B in /*) ;; *) B=$PWD/$B ;; esac
here=$(cd "$(dirname "$0")" && pwd)
export CHELA_PLOT_DIR=$here/../plots
fixture=$here/fixtures/results_small.csv
# gnuplot's working directory, whatever it is, lies inside the scratch folder:
# a payload that ran would leave its PW* marker file where `find` sees it
cd "$work" || exit 1

if ! command -v gnuplot >/dev/null; then
    echo "SKIP: gnuplot not installed (exit 77: ctest reports Skipped, never Passed)"
    exit 77
fi

# --- the happy path --------------------------------------------------------
if "$B" plot "$fixture" -o "$work/out" >"$work/log" 2>&1; then
    ok
    for op in linear_attn long_conv softmax_attn; do
        for chart in time bandwidth hbm; do
            f=$work/out/${chart}_$op
            if [ -s "$f.png" ] && head -c 8 "$f.png" | od -An -tx1 | grep -q '89 50 4e 47'; then ok
            else bad "$f.png missing, empty or not a PNG"; fi
            if [ -s "$f.svg" ] && grep -q '<svg' "$f.svg"; then ok; else bad "$f.svg missing or not SVG"; fi
        done
    done
    # a kernel and a baseline of the same op and shape: a speed-up chart
    for e in png svg; do
        [ -s "$work/out/speedup_linear_attn.$e" ] && ok || bad "speedup_linear_attn.$e missing"
    done
    # no kernel-role variant for these ops: no speed-up chart
    [ ! -e "$work/out/speedup_softmax_attn.png" ] && ok || bad "speedup chart without a kernel"
    # series keyed by shape: chunked at two head shapes is two lines (3 blocks)
    blocks=$(grep -c $'\ty\tlo\thi$' "$work/out/time_linear_attn.dat")
    [ "$blocks" -eq 3 ] && ok || bad "time_linear_attn.dat: $blocks series, want 3"
    # the skip:oom row is a gap (NaN), never a zero
    grep -q $'^16384\tNaN' "$work/out/time_softmax_attn.dat" && ok || bad "skipped row not a NaN gap"
    awk -F'\t' 'NF == 4 && $1 ~ /^[0-9]/ && $2 == 0 { bad = 1 } END { exit bad }' "$work"/out/*.dat \
        && ok || bad "a zero value in a .dat file"
    # no gnuplot logs left behind on success
    ls "$work/out" | grep -q '\.log$' && bad "gnuplot log left behind" || ok
else
    bad "plot on the fixture exited non-zero: $(tail -3 "$work/log")"
fi

# --- --breakdown rows (H100 chela/fused, 2 lengths x 12 stages): the stacked chart -----
bd=$here/fixtures/breakdown_small.csv
if "$B" plot "$bd" -o "$work/bd" >"$work/bdlog" 2>&1; then
    for e in png svg; do
        [ -s "$work/bd/breakdown_chela_fused.$e" ] && ok || bad "breakdown_chela_fused.$e missing"
    done
    # one bar per length, 12 stages + the whole call each
    bars=$(grep -c '^[0-9]*k\b' "$work/bd/breakdown_chela_fused.dat")
    [ "$bars" -eq 2 ] && ok || bad "breakdown: $bars bars, want 2"
    cols=$(head -1 "$work/bd/breakdown_chela_fused.dat" | awk -F'\t' '{print NF}')
    [ "$cols" -eq 14 ] && ok || bad "breakdown header: $cols columns, want T + 12 stages + whole"
    # stage rows stay out of the per-variant charts
    grep -q 'ln_shortconv' "$work/bd/time_chela.dat" && bad "stage rows in the time chart" || ok
else
    bad "plot on the breakdown fixture exited non-zero: $(tail -3 "$work/bdlog")"
fi

# --- the layers chart: the whole layers of several ops in one chart ------------
# the breakdown fixture alone holds one layer op: no layers chart
[ -e "$work/bd/time_layers.dat" ] && bad "a layers chart from one layer op" || ok
# its two whole chela/fused rows again as transformer/layer rows (a second layer op)
awk -F, 'BEGIN { OFS = "," } NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; print; next }
    { print }
    $col["role"] == "kernel" { $col["op"] = "transformer"; $col["variant"] = "transformer/layer";
                               $col["role"] = "baseline"; $col["median_ms"] *= 2; print }' \
    "$bd" >"$work/layers.csv"
if "$B" plot "$work/layers.csv" -o "$work/ly" >"$work/lylog" 2>&1; then
    blocks=$(grep -c $'\ty\tlo\thi$' "$work/ly/time_layers.dat" 2>/dev/null)
    [ "$blocks" = 2 ] && ok || bad "time_layers.dat: ${blocks:-no file}, want 2 series"
    grep -q '^chela/fused' "$work/ly/time_layers.dat" && grep -q '^transformer/layer' \
        "$work/ly/time_layers.dat" && ok || bad "time_layers.dat: labels are not op/variant"
    grep -q 'ln_shortconv' "$work/ly/time_layers.dat" && bad "stage rows in the layers chart" || ok
    [ -s "$work/ly/time_layers.png" ] && ok || bad "time_layers.png missing"
else
    bad "plot of two layer ops exited non-zero: $(tail -3 "$work/lylog")"
fi

# --- bad input: non-zero, one line on stderr ---------------------------------
expect_error() { # expect_error WHAT [env...] -- args...
    local what=$1 err rc lines
    shift
    err=$("$@" 2>&1 >/dev/null)
    rc=$?
    lines=$(printf '%s\n' "$err" | grep -c .)
    if [ "$rc" -eq 0 ] || [ "$lines" -ne 1 ]; then bad "$what -> rc=$rc, $lines line(s): $err"
    else ok; fi
}

{ head -1 "$fixture"; grep -v ',ok,' "$fixture" | tail -n +2; } >"$work/skips.csv"
expect_error "only skipped rows" "$B" plot "$work/skips.csv" -o "$work/o2"
err=$("$B" plot "$work/skips.csv" -o "$work/o2" 2>&1 >/dev/null)
case $err in *"no ok rows to plot in"*) ok ;; *) bad "skip-only message: $err" ;; esac
expect_error "two files of only skipped rows" "$B" plot "$work/skips.csv" "$work/skips.csv" -o "$work/o2"
# a skipped-only file beside a good one adds gaps, not an error
if "$B" plot "$work/skips.csv" "$fixture" -o "$work/o7" >/dev/null 2>"$work/o7.err" &&
    [ -s "$work/o7/time_softmax_attn.png" ]; then ok
else bad "skipped-only file beside a good one: $(cat "$work/o7.err")"; fi

{ head -1 "$fixture"; echo "1,abc,NVIDIA H100,1994,cuda,linear_attn"; } >"$work/bad.csv"
expect_error "malformed CSV" "$B" plot "$work/bad.csv" -o "$work/o3"
{ echo "not,a,results,file"; sed -n 2p "$fixture"; } >"$work/bad2.csv"
expect_error "wrong header" "$B" plot "$work/bad2.csv" -o "$work/o4"
expect_error "missing CSV" "$B" plot "$work/no-such.csv" -o "$work/o5"
expect_error "no gnuplot on PATH" env PATH=/nonexistent "$B" plot "$fixture" -o "$work/o6"
err=$(env PATH=/nonexistent "$B" plot "$fixture" -o "$work/o6" 2>&1 >/dev/null)
case $err in *"gnuplot not found"*) ok ;; *) bad "no-gnuplot message: $err" ;; esac

# --- data is never code: hostile text in every text field ---------------------
# From the breakdown fixture, every text column holds quotes, backquotes, ';',
# $(...), system(...), gnuplot's @ macros and enhanced-text markup, a literal
# "\n" and a CR; the device closes the subtitle's quote and calls system()
# (what the breakdown chart used to paste into `gnuplot -e`).  The variant
# climbs ../../ out of the output folder.  Two more rows carry a hostile role
# (an extra series) and a hostile status (a gap).  No comma: the CSV has none.
mkdir -p "$work/h/deep/er"
awk -v q="'" 'BEGIN { FS = OFS = "," }
NR == 1 { print; next }
{
    $2 = q "\"`touch PWsha`$(touch PWsha)\\n;@x"
    $3 = "NVIDIA H100" q "; x=system(" q "touch PWdevice" q "); y=" q "\r$(touch PWdev2)"
    $5 = "cu" q "`$(;"
    $6 = "ch" q ";system(" q "touch PWop" q ")#&"
    sub(/^chela\/fused/, "chela/../../f" q "$(touch PWvar)`x`@{^_}\r", $7)
    sub(/:ln_shortconv$/, ":ln\t#" q "\"$(touch PWst)", $7)
    $9 = "bf" q "\"`@{;"
    $34 = "note" q "; system(" q "touch PWnote" q ") \\n\r"
    print
    if (NR == 2) {
        r = $0
        $8 = "r" q "\";$(touch PWr)"; print
        $0 = r; $33 = "skip" q "; x=system(" q "touch PWstatus" q ") $(touch PWs2)"; print
    }
}' "$here/fixtures/breakdown_small.csv" >"$work/h/hostile.csv"
hout=$work/h/deep/er/out
if "$B" plot "$work/h/hostile.csv" -o "$hout" >"$work/h/log" 2>&1; then ok
else bad "plot on the hostile CSV exited non-zero: $(tail -2 "$work/h/log")"; fi
ran=$(find "$work" -name 'PW*' | head -3)
[ -z "$ran" ] && ok || bad "a CSV payload ran: $ran"
# still renders: the time and breakdown charts, whole PNG + SVG for every .dat
n_png=0
for d in "$hout"/*.dat; do
    [ -e "$d" ] || continue
    f=${d%.dat}
    if [ -s "$f.png" ] && head -c 8 "$f.png" | od -An -tx1 | grep -q '89 50 4e 47'; then n_png=$((n_png + 1))
    else bad "hostile: ${f##*/}.png missing or not a PNG"; fi
    grep -q '</svg>' "$f.svg" 2>/dev/null && ok || bad "hostile: ${f##*/}.svg missing or cut"
done
[ "$n_png" -ge 4 ] && ok || bad "hostile: $n_png charts, want time, bandwidth, hbm and breakdown"
ls "$hout" | grep -q '^breakdown_' && ok || bad "hostile: no breakdown chart"
# file names from CSV text are [A-Za-z0-9_-] only, and all inside the output folder
odd=$(ls -A "$hout" | grep -v '^[A-Za-z0-9_-]*\.\(dat\|png\|svg\)$')
[ -z "$odd" ] && ok || bad "hostile: odd names in the output folder: $odd"
stray=$(cd "$work/h" && find . -type f ! -path './deep/er/out/*' ! -name hostile.csv ! -name log)
[ -z "$stray" ] && ok || bad "hostile: files written outside the output folder: $stray"
# labels in the .dat files: no quote, tab, '#' or markup smuggled in
bdat=$(ls "$hout"/breakdown_*.dat 2>/dev/null | head -1)
cols=$(head -1 "${bdat:-/dev/null}" | awk -F'\t' '{print NF}')
[ "${cols:-0}" -eq 14 ] && ok || bad "hostile breakdown header: ${cols:-no} columns, want 14"
grep -l "[\"'\`\$#@{}^&;]" "$hout"/*.dat >/dev/null && bad "hostile text left in a .dat label" || ok

# hostile command-line paths: a script folder and -o folders holding quotes,
# $(...), backquotes, and a leading '|' (gnuplot pipes `set output '|cmd'`)
gpd="$work/gp'\"\$(touch PWgp);\`touch PWgq\`"
mkdir -p "$gpd" && cp "$CHELA_PLOT_DIR"/*.gp "$gpd"/
for o in "$work/o'\"\$(touch PWo);\`touch PWo2\`" '|touch PWpipe;x' '<touch PWlt;x'; do
    if CHELA_PLOT_DIR=$gpd "$B" plot "$fixture" -o "$o" >"$work/p.log" 2>&1 &&
        [ -s "$o/time_linear_attn.png" ]; then ok
    else bad "plot -o '$o' with scripts in '$gpd': $(tail -2 "$work/p.log")"; fi
done
ran=$(find "$work" -name 'PW*' | head -3)
[ -z "$ran" ] && ok || bad "a path payload ran: $ran"

# --- the default output folder is ./charts, never the committed plots/ ------
mkdir -p "$work/def/plots" && echo committed >"$work/def/plots/time_linear_attn.png"
if (cd "$work/def" && "$B" plot "$fixture" >/dev/null 2>&1) && [ -s "$work/def/charts/time_linear_attn.png" ]; then ok
else bad "plot without -o wrote no charts/"; fi
grep -qx committed "$work/def/plots/time_linear_attn.png" && ok || bad "plot without -o overwrote plots/"

# --- a failed chart leaves the older one as it was --------------------------
# A first good run, kept as a reference; then runs that fail while writing.
# The folder must come out byte-identical: no temp file, no 0-byte or cut
# chart, no half-replaced set.
"$B" plot "$fixture" -o "$work/keep" >/dev/null 2>&1 && cp -a "$work/keep" "$work/keep.ref"
same_as_before() { # same_as_before WHAT
    if diff -r "$work/keep.ref" "$work/keep" >"$work/diff" 2>&1; then ok
    else bad "$1: the older charts changed: $(head -3 "$work/diff")"; fi
}
# fake gnuplots: one dies half-way through (exit 1), one exits 0 on an empty
# file, one on a cut PNG -- what a full disk looks like from outside
mkdir -p "$work/fake"
cat >"$work/fake/gnuplot" <<'SH'
#!/bin/sh
e=$2; o=${e#*out=\'}; o=${o%%\'*}
case $FAKE in
    fail) printf 'half a chart' >"$o"; echo "fake gnuplot: No space left on device" >&2; exit 1 ;;
    empty) : >"$o" ;;
    cut) head -c 100 "$PNG" >"$o" ;;
esac
exit 0
SH
chmod +x "$work/fake/gnuplot"
for mode in fail empty cut; do
    expect_error "gnuplot $mode" env FAKE=$mode PNG="$work/keep.ref/time_linear_attn.png" \
        PATH="$work/fake:$PATH" "$B" plot "$fixture" -o "$work/keep"
    same_as_before "gnuplot $mode"
done
# a file size limit stands in for a full disk (no root needed): at 8 KiB the
# real gnuplot fails on the PNG, at 0 plot's own .dat write fails
for kib in 8 0; do
    expect_error "file size limit $kib KiB" bash -c 'ulimit -f "$1"; shift; exec "$@"' - "$kib" \
        "$B" plot "$fixture" -o "$work/keep"
    same_as_before "file size limit $kib KiB"
done

# an output name taken by a symlink (it would write through it) or a directory
mkdir -p "$work/ln" && echo precious >"$work/victim"
ln -s "$work/victim" "$work/ln/time_linear_attn.png"
expect_error "symlink at an output name" "$B" plot "$fixture" -o "$work/ln"
err=$("$B" plot "$fixture" -o "$work/ln" 2>&1 >/dev/null)
case $err in *"not a regular file"*) ok ;; *) bad "symlink message: $err" ;; esac
grep -qx precious "$work/victim" && [ -L "$work/ln/time_linear_attn.png" ] && ok \
    || bad "plot wrote through the symlink"
mkdir -p "$work/dd/time_linear_attn.svg"
expect_error "directory at an output name" "$B" plot "$fixture" -o "$work/dd"
[ -d "$work/dd/time_linear_attn.svg" ] && ok || bad "directory at an output name replaced"

finish
