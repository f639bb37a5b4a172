#!/usr/bin/env bash
# plot_cli.sh: `chela-bench plot` as a user meets it.  A small schema-v1 file
# (tests/fixtures/results_small.csv: H100 rows, two linear_attn shapes, one
# skip:oom row) gives non-empty PNG + SVG files for every chart; bad input
# (missing, malformed, only skipped rows, no gnuplot) exits non-zero with
# exactly one line on stderr.
set -u
. "$(dirname "$0")/cli_lib.sh"
B=$(command -v "$B") || { echo "FAIL: $CHELA_BENCH not found"; exit 1; }
case $B in /*) ;; *) B=$PWD/$B ;; esac
here=$(cd "$(dirname "$0")" && pwd)
export CHELA_PLOT_DIR=$here/../plots
fixture=$here/fixtures/results_small.csv

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

{ head -1 "$fixture"; echo "1,abc,NVIDIA H100,1994,cuda,linear_attn"; } >"$work/bad.csv"
expect_error "malformed CSV" "$B" plot "$work/bad.csv" -o "$work/o3"
{ echo "not,a,results,file"; sed -n 2p "$fixture"; } >"$work/bad2.csv"
expect_error "wrong header" "$B" plot "$work/bad2.csv" -o "$work/o4"
expect_error "missing CSV" "$B" plot "$work/no-such.csv" -o "$work/o5"
expect_error "no gnuplot on PATH" env PATH=/nonexistent "$B" plot "$fixture" -o "$work/o6"
err=$(env PATH=/nonexistent "$B" plot "$fixture" -o "$work/o6" 2>&1 >/dev/null)
case $err in *"gnuplot not found"*) ok ;; *) bad "no-gnuplot message: $err" ;; esac

finish
