#!/usr/bin/env bash
# sanitize_gpu.sh BIN OUTDIR: compute-sanitizer memcheck and racecheck over every
# GPU variant at small and odd shapes (T = 1, below a tile, not a multiple of one),
# both head dims, the CHELA head shape, several segments.  Ceilings are skipped
# (their 8192^3 GEMMs would take minutes under the tools).
set -u
BIN=$1
OUT=$2
export CHELA_NO_CEILINGS=1
# no GEMM tuning at setup: ~650 cuBLAS launches a layer point under racecheck grew its host
# memory to 130 GB on the H100 machine (killed); the layers' own kernels are what is checked
export CHELA_LT_TUNE=0
common="--warmup 0 --repeat 1 --budget-ms 0 --batch 2"
shapes=(
    "--ops linear_attn,softmax_attn --seq 1,37,130 --heads 2 --head-dim 64"
    "--ops linear_attn,softmax_attn --seq 70 --heads 1 --head-dim 128"
    "--ops linear_attn --seq 100 --heads 1 --dk 128 --dv 2048"
    "--ops linear_attn --variants chunked --seq 3000 --heads 1 --head-dim 64"
    "--ops long_conv --seq 1,37,130 --dim 5"
    "--ops long_conv,short_long_conv --seq 37,700,2048,2100 --dim 3"
    "--ops chela --seq 300 --dim 64 --z 64 --v 128"
    "--ops linear_attn --variants chunked --seq 1000 --heads 1 --dk 128 --dv 256"
    "--ops chela --seq 300 --dim 64 --z 64 --v 128"
)
# environment per shape: the last two force segments and pass-A parts (PDL launches, V's SiLU
# in pass A); the layer's small GEMMs keep cuBLAS off the TMA kernels that racecheck misreads
envs=("" "" "" "" "" "" ""
    "CHELA_LA_SEG=128 CHELA_LA_SUB=3"
    "CHELA_LA_SEG=128 CHELA_LA_SUB=2"
)
for tool in memcheck racecheck; do
    i=0
    for s in "${shapes[@]}"; do
        i=$((i + 1))
        e=${envs[$((i - 1))]}
        env $e timeout 150 compute-sanitizer --tool $tool --error-exitcode 9 $BIN $common $s \
            -o /tmp/san.csv > "$OUT/san_${tool}_$i.log" 2>&1
        echo "$tool [${e:+$e }$s]: rc=$? $(grep -E '(ERROR SUMMARY|RACECHECK SUMMARY)' "$OUT/san_${tool}_$i.log" | tail -1)"
    done
done
