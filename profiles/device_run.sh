#!/usr/bin/env bash
# device_run.sh OUTDIR [SHA] [MODE]: build, test and benchmark on a GPU machine in one go.
#   MODE: all (default) | tests | bench | layer | ncu | la | final | conv | sweep | san | parts | attn | pdl | xpair | bp | v6 | ln | lmfinal | wg | wgfinal | lt | gate | gate2 | tune2 | tune3 | lcw | sched | narrow | record
# Check and pkg-config may be missing there: Debian packages in .debs/ are
# unpacked into a private prefix (see TOOLING notes in profiles/NOTES.md).
set -uo pipefail
OUT=${1:?usage: device_run.sh OUTDIR [SHA] [MODE]}
SHA=${2:-unknown}
MODE=${3:-all}
mkdir -p "$OUT"
if [ -d .debs ]; then
    P=/tmp/deb
    mkdir -p $P
    for f in .debs/*.deb; do dpkg -x "$f" $P; done
    export PATH=$P/usr/bin:$PATH LD_LIBRARY_PATH=$P/usr/lib/x86_64-linux-gnu
    export PKG_CONFIG_PATH=$P/usr/lib/x86_64-linux-gnu/pkgconfig PKG_CONFIG_SYSROOT_DIR=$P
fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.draw,temperature.gpu \
    --format=csv | tee "$OUT/gpu.txt"
B=/tmp/b
BIN=$B/chela-bench
{ cmake -S . -B $B -DCMAKE_BUILD_TYPE=Release -DCHELA_GIT_SHA="$SHA" &&
  cmake --build $B -j 16; } > "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
echo "build ok"
# The GPU tests (ctest -L gpu) into ctest.log, their summary lines to stdout.
gpu_tests() {
    (cd $B && timeout 300 ctest -L gpu --output-on-failure) > "$OUT/ctest.log" 2>&1
    grep -E "tests passed|Passed|Failed|Skipped|SKIP|FAIL|Assertion|chela-bench returned|F:gpu" \
        "$OUT/ctest.log" | tail -20
}
# The two layers over the sweep with the breakdown, into layer.csv.
layer_sweep() {
    echo "== $BIN --seq 1k..64k --ops chela,transformer --breakdown --profile"
    timeout 300 $BIN --seq 1k..64k --ops chela,transformer --breakdown --profile \
        -o "$OUT/layer.csv" 2>> "$OUT/run.log"; echo "rc=$?"
    cut -d, -f4,7,11,17,26,27,32,33 "$OUT/layer.csv" | tail -n +2
}
# The columns worth reading in a run's log: variant, dtype, batch, seq, median, spread,
# floor ratio, HBM ratio, error, status.
cols() { cut -d, -f7,9,10,11,17,21,27,30,32,33 "$1" | tail -n +2; }
# The long conv over the sweep, into conv.csv.
conv_sweep() {
    echo "== $BIN --seq 1k..64k --ops long_conv --profile"
    timeout 120 $BIN --seq 1k..64k --ops long_conv --profile -o "$OUT/conv.csv" 2>> "$OUT/run.log"
    echo "rc=$?"; cols "$OUT/conv.csv"
}
# The short-long conv forms over the sweep, into slc.csv.
slc_sweep() {
    echo "== $BIN --seq 1k..64k --ops short_long_conv --profile"
    timeout 150 $BIN --seq 1k..64k --ops short_long_conv --profile -o "$OUT/slc.csv" \
        2>> "$OUT/run.log"; echo "rc=$?"; cols "$OUT/slc.csv"
}
# compute-sanitizer memcheck and racecheck over chela-bench argument strings, into
# sanitizer.txt (no ceilings: their cuBLAS GEMM, nvjet_sm90, is racecheck's false positive;
# no GEMM tuning: racecheck's host memory grew to 130 GB over its ~650 cuBLAS launches a point
# and the kernel killed the process, 9ed2956).
sanitize() {
    command -v compute-sanitizer >/dev/null || return 0
    for tool in memcheck racecheck; do
        for a in "$@"; do
            echo "== compute-sanitizer --tool $tool $a" >> "$OUT/sanitizer.txt"
            CHELA_NO_CEILINGS=1 CHELA_LT_TUNE=0 CHELA_LA_PLAN=1 timeout 150 compute-sanitizer --tool $tool \
                --error-exitcode 9 $BIN $a --warmup 0 --repeat 1 --budget-ms 0 -o /tmp/san.csv \
                > /tmp/san.log 2>&1
            rc=$?
            grep -E "plan|SUMMARY|Error" /tmp/san.log | head -8 >> "$OUT/sanitizer.txt"
            # a failing run's own last words (the app's, not the sanitizer's)
            [ $rc = 0 ] || grep -v "^=========" /tmp/san.log | tail -6 | cut -c1-250 >> "$OUT/sanitizer.txt"
            echo "rc=$rc" >> "$OUT/sanitizer.txt"
        done
    done
    grep -E "^==|rc=|ERROR SUMMARY|RACECHECK SUMMARY" "$OUT/sanitizer.txt"
}
if [ "$MODE" = all ] || [ "$MODE" = tests ]; then
    (cd $B && timeout 420 ctest --output-on-failure) > "$OUT/ctest.log" 2>&1
    grep -E "tests passed|Passed|Failed|Skipped|SKIP|FAIL|Assertion" "$OUT/ctest.log" | tail -40
fi
if [ "$MODE" = all ] || [ "$MODE" = bench ]; then
    BIN=$B/chela-bench
    echo "== $BIN --seq 1k..64k --ops linear_attn,long_conv,softmax_attn --profile"
    $BIN --seq 1k..64k --ops linear_attn,long_conv,softmax_attn --profile \
        -o "$OUT/lm.csv" 2> "$OUT/lm.log"; echo "rc=$?"
    echo "== $BIN --seq 1k..64k --ops linear_attn --heads 1 --dk 128 --dv 2048 --profile"
    $BIN --seq 1k..64k --ops linear_attn --heads 1 --dk 128 --dv 2048 --profile \
        -o "$OUT/chela_head.csv" 2> "$OUT/chela_head.log"; echo "rc=$?"
    echo "== $BIN --seq 1k..64k --ops linear_attn --variants chunked --batch 1 (time linear in T)"
    $BIN --seq 1k..64k --ops linear_attn --variants chunked --batch 1 \
        -o "$OUT/b1.csv" 2> "$OUT/b1.log"; echo "rc=$?"
    grep -hE "ok$|fail|skip" "$OUT/lm.log" "$OUT/chela_head.log" "$OUT/b1.log" | cut -c1-150
fi
if [ "$MODE" = all ] || [ "$MODE" = layer ]; then
    echo "== $BIN --seq 1k..64k --ops long_conv,short_long_conv --profile"
    $BIN --seq 1k..64k --ops long_conv,short_long_conv --profile \
        -o "$OUT/conv.csv" 2> "$OUT/conv.log"; echo "rc=$?"
    echo "== $BIN --seq 1k..64k --ops chela,transformer --breakdown --profile"
    $BIN --seq 1k..64k --ops chela,transformer --breakdown --profile \
        -o "$OUT/layer.csv" 2> "$OUT/layer.log"; echo "rc=$?"
    grep -hE "ok$|fail|skip" "$OUT/conv.log" "$OUT/layer.log" | grep -v ":" | cut -c1-150
    grep -hE "fail|skip" "$OUT/conv.log" "$OUT/layer.log" | cut -c1-250
fi
# Linear attention versions side by side at the CHELA head (CHELA_LA_VERSION), and an Nsight
# Compute look at each version's output kernel at T = 4k (where its time goes).
if [ "$MODE" = la ]; then
    gpu_tests
    for ver in 2 3; do
        echo "== CHELA_LA_VERSION=$ver $BIN --seq 1k..64k --ops linear_attn --variants chunked --heads 1 --dk 128 --dv 2048 --profile"
        CHELA_LA_VERSION=$ver $BIN --seq 1k..64k --ops linear_attn --variants chunked --heads 1 \
            --dk 128 --dv 2048 --profile -o "$OUT/chela_head_v$ver.csv" 2> "$OUT/chela_head_v$ver.log"
        echo "rc=$?"; cut -d, -f1-14 "$OUT/chela_head_v$ver.csv" | head -9
    done
    if command -v ncu >/dev/null; then
        for ver in 2 3; do
            CHELA_LA_VERSION=$ver CHELA_NO_CEILINGS=1 timeout 120 ncu -k regex:output_kernel -c 1 \
                --section SpeedOfLight --section WarpStateStats --section ComputeWorkloadAnalysis \
                --section MemoryWorkloadAnalysis --section Occupancy \
                $BIN --seq 4096 --ops linear_attn --variants chunked --heads 1 --dk 128 --dv 2048 \
                --warmup 0 --repeat 1 --budget-ms 0 -o /tmp/ncu_rows.csv > "$OUT/ncu_la_v$ver.txt" 2>&1
            echo "ncu v$ver: rc=$? $(grep -c . "$OUT/ncu_la_v$ver.txt") lines"
        done
    fi
fi
# A session's closing run: GPU tests, compute-sanitizer on the attention kernels, then the
# short-long conv and the layers (at most 8 files come back: build.log only on failure).
if [ "$MODE" = final ]; then
    rm -f "$OUT/build.log"
    gpu_tests
    sanitize "--ops linear_attn --variants chunked --seq 300,3001 --heads 1 --dk 128 --dv 64" \
        "--ops linear_attn --variants chunked --seq 300,3001 --heads 1 --dk 128 --dv 512"
    echo "== $BIN --seq 1k..64k --ops short_long_conv --profile"
    timeout 150 $BIN --seq 1k..64k --ops short_long_conv --profile -o "$OUT/slc.csv" \
        2> "$OUT/slc.log"; echo "rc=$?"
    echo "== $BIN --seq 1k..64k --ops chela,transformer --breakdown --profile"
    timeout 300 $BIN --seq 1k..64k --ops chela,transformer --breakdown --profile \
        -o "$OUT/layer.csv" 2> "$OUT/layer.log"; echo "rc=$?"
    grep -hE "fail|skip" "$OUT/slc.log" "$OUT/layer.log" | cut -c1-250 | head
fi
# The long convolution's two paths (FFT and the Toeplitz product) over the sweep, the Toeplitz
# path forced past its default range to find the crossover, the short-long conv forms, and an
# Nsight Compute look at the Toeplitz kernel at T = 1k.
if [ "$MODE" = conv ]; then
    gpu_tests
    echo "== $BIN --seq 1k..64k --ops long_conv --profile"
    timeout 150 $BIN --seq 1k..64k --ops long_conv --profile -o "$OUT/conv.csv" \
        2>> "$OUT/run.log"; echo "rc=$?"
    echo "== CHELA_LCF_TOEPLITZ_MAX_T=16384 $BIN --seq 4k,8k --ops long_conv --variants fast --profile"
    CHELA_LCF_TOEPLITZ_MAX_T=16384 timeout 100 $BIN --seq 4k,8k --ops long_conv --variants fast \
        --profile -o "$OUT/conv_toep.csv" 2>> "$OUT/run.log"; echo "rc=$?"
    echo "== CHELA_LCT_VERSION=3 $BIN --seq 1k,2k --ops long_conv --variants fast --profile"
    CHELA_LCT_VERSION=3 timeout 60 $BIN --seq 1k,2k --ops long_conv --variants fast --profile \
        -o "$OUT/conv_v3.csv" 2>> "$OUT/run.log"; echo "rc=$?"
    echo "== $BIN --seq 1k..64k --ops short_long_conv --profile"
    timeout 150 $BIN --seq 1k..64k --ops short_long_conv --profile -o "$OUT/slc.csv" \
        2>> "$OUT/run.log"; echo "rc=$?"
    for f in conv conv_toep conv_v3 slc; do cut -d, -f6,7,11,17,26,27,30,32,33 "$OUT/$f.csv"; done
    if command -v ncu >/dev/null; then
        CHELA_NO_CEILINGS=1 timeout 120 ncu -k regex:lc[rt]_kernel -c 1 --section SpeedOfLight \
            --section WarpStateStats --section ComputeWorkloadAnalysis --section Occupancy \
            --section MemoryWorkloadAnalysis $BIN --seq 1024 --ops long_conv --variants fast \
            --warmup 0 --repeat 1 --budget-ms 0 -o /tmp/ncu_rows.csv > "$OUT/ncu_lct.txt" 2>&1
        echo "ncu lct: rc=$? $(grep -c . "$OUT/ncu_lct.txt") lines"
    fi
fi
# GPU tests, then the convolution ops and the two layers over the sweep (no sanitizer, no ncu).
if [ "$MODE" = sweep ]; then
    rm -f "$OUT/build.log"
    gpu_tests
    for op in long_conv short_long_conv; do
        echo "== $BIN --seq 1k..64k --ops $op --profile"
        timeout 150 $BIN --seq 1k..64k --ops $op --profile -o "$OUT/$op.csv" 2>> "$OUT/run.log"
        echo "rc=$?"; cut -d, -f7,11,17,27,32,33 "$OUT/$op.csv" | tail -n +2
    done
    layer_sweep
    echo "== $BIN --seq 1k..64k --ops linear_attn --variants chunked --heads 1 --dk 128 --dv 2048 --profile"
    timeout 100 $BIN --seq 1k..64k --ops linear_attn --variants chunked --heads 1 --dk 128 \
        --dv 2048 --profile -o "$OUT/la_head.csv" 2>> "$OUT/run.log"; echo "rc=$?"
    echo "== $BIN --seq 1k..64k --ops linear_attn --variants chunked --profile"
    timeout 100 $BIN --seq 1k..64k --ops linear_attn --variants chunked --profile \
        -o "$OUT/la_lm.csv" 2>> "$OUT/run.log"; echo "rc=$?"
    cut -d, -f7,11,17,27,32,33 "$OUT/la_head.csv" "$OUT/la_lm.csv" | grep -v variant
    grep -hE "fail|skip" "$OUT/run.log" | cut -c1-250 | head
fi
# Pass A parts (linear_attn v4) against one part a segment (CHELA_LA_SUB=1, v3's pass A) at
# both attention shapes, the plans printed (CHELA_LA_PLAN=1), and Nsight Compute on the FFT
# path of long_conv/fast at T = 4k and 16k (the launch after setup's spectrum transform).
if [ "$MODE" = parts ]; then
    rm -f "$OUT/build.log"
    gpu_tests
    HEAD="--heads 1 --dk 128 --dv 2048"
    echo "== CHELA_LA_PLAN=1 $BIN --seq 1k..64k --ops linear_attn --variants chunked $HEAD --profile"
    CHELA_LA_PLAN=1 timeout 100 $BIN --seq 1k..64k --ops linear_attn --variants chunked $HEAD \
        --profile -o "$OUT/la_head.csv" 2>> "$OUT/run.log"; echo "rc=$?"
    echo "== CHELA_LA_PLAN=1 $BIN --seq 1k..64k --ops linear_attn --variants chunked --profile"
    CHELA_LA_PLAN=1 timeout 100 $BIN --seq 1k..64k --ops linear_attn --variants chunked \
        --profile -o "$OUT/la_lm.csv" 2>> "$OUT/run.log"; echo "rc=$?"
    echo "== CHELA_LA_SUB=1 (one part a segment), 8k..64k, both shapes"
    CHELA_LA_SUB=1 timeout 60 $BIN --seq 8k..64k --ops linear_attn --variants chunked $HEAD \
        -o /tmp/sub1_head.csv 2>> "$OUT/run.log"; echo "rc=$?"
    CHELA_LA_SUB=1 timeout 60 $BIN --seq 8k..64k --ops linear_attn --variants chunked \
        -o /tmp/sub1_lm.csv 2>> "$OUT/run.log"; echo "rc=$?"
    { cat /tmp/sub1_head.csv; tail -n +2 /tmp/sub1_lm.csv; } > "$OUT/la_sub1.csv"
    cut -d, -f7,11,13,17,27,32,33 "$OUT/la_head.csv" "$OUT/la_lm.csv" "$OUT/la_sub1.csv" \
        | grep -v variant
    grep -h "plan" "$OUT/run.log" | cut -c1-200
    if command -v ncu >/dev/null; then
        for T in 4096 16384; do
            echo "== ncu lcf_kernel T=$T" >> "$OUT/ncu_fft.txt"
            CHELA_NO_CEILINGS=1 timeout 120 ncu -k regex:lcf_kernel --launch-skip 1 -c 1 \
                --section SpeedOfLight --section WarpStateStats --section ComputeWorkloadAnalysis \
                --section MemoryWorkloadAnalysis --section Occupancy --section SchedulerStats \
                --section InstructionStats --section LaunchStats $BIN --seq $T --ops long_conv \
                --variants fast --warmup 0 --repeat 1 --budget-ms 0 -o /tmp/ncu_rows.csv \
                >> "$OUT/ncu_fft.txt" 2>&1
            echo "ncu fft T=$T: rc=$?"
        done
    fi
fi
# GPU tests, the two layers with the breakdown, and the attention at both shapes (plans shown).
if [ "$MODE" = attn ]; then
    rm -f "$OUT/build.log"
    gpu_tests
    layer_sweep
    echo "== CHELA_LA_PLAN=1 $BIN --seq 1k..64k --ops linear_attn --variants chunked --heads 1 --dk 128 --dv 2048 --profile"
    CHELA_LA_PLAN=1 timeout 100 $BIN --seq 1k..64k --ops linear_attn --variants chunked \
        --heads 1 --dk 128 --dv 2048 --profile -o "$OUT/la_head.csv" 2>> "$OUT/run.log"
    echo "rc=$?"
    echo "== CHELA_LA_PLAN=1 $BIN --seq 1k..64k --ops linear_attn --variants chunked --profile"
    CHELA_LA_PLAN=1 timeout 100 $BIN --seq 1k..64k --ops linear_attn --variants chunked \
        --profile -o "$OUT/la_lm.csv" 2>> "$OUT/run.log"; echo "rc=$?"
    cut -d, -f7,11,17,27,32,33 "$OUT/la_head.csv" "$OUT/la_lm.csv" | grep -v variant
    grep -h "plan" "$OUT/run.log" | grep -v "H=16 T=[124]" | cut -c30-200
    grep -hE "fail|skip" "$OUT/run.log" | cut -c1-250 | head
fi
# The attention's passes with and without programmatic dependent launch (CHELA_LA_PDL=0),
# twice each in alternation at both shapes, GPU tests, and memcheck / racecheck of the PDL
# launches with segments.
if [ "$MODE" = pdl ]; then
    rm -f "$OUT/build.log"
    gpu_tests
    HEAD="--heads 1 --dk 128 --dv 2048"
    for rep in 1 2; do
        for pdl in 1 0; do
            echo "== rep $rep CHELA_LA_PDL=$pdl $BIN --seq 1k..64k --ops linear_attn --variants chunked [$HEAD] --profile"
            CHELA_LA_PDL=$pdl timeout 100 $BIN --seq 1k..64k --ops linear_attn --variants chunked \
                $HEAD --profile -o "/tmp/head_${pdl}_$rep.csv" 2>> "$OUT/run.log"; echo "rc=$?"
            CHELA_LA_PDL=$pdl timeout 100 $BIN --seq 1k..64k --ops linear_attn --variants chunked \
                --profile -o "/tmp/lm_${pdl}_$rep.csv" 2>> "$OUT/run.log"; echo "rc=$?"
        done
    done
    for pdl in 1 0; do
        { cat /tmp/head_${pdl}_1.csv; tail -n +2 /tmp/head_${pdl}_2.csv; tail -n +2 /tmp/lm_${pdl}_1.csv;
          tail -n +2 /tmp/lm_${pdl}_2.csv; } > "$OUT/la_pdl$pdl.csv"
        echo "PDL=$pdl: T, dk, ms, floor_ratio"
        cut -d, -f11,13,17,27 "$OUT/la_pdl$pdl.csv" | tail -n +2 | paste -d' ' - - - - - - -
    done
    if command -v compute-sanitizer >/dev/null; then
        for tool in memcheck racecheck; do
            echo "== compute-sanitizer --tool $tool (CHELA head dv 512, T 3001, CHELA_LA_SEG=512)" \
                >> "$OUT/sanitizer.txt"
            CHELA_LA_SEG=512 CHELA_LA_SUB=2 timeout 150 compute-sanitizer --tool $tool --error-exitcode 9 \
                $BIN --seq 3001 --ops linear_attn,chela --variants chunked,fused --heads 1 --dk 128 \
                --dv 512 --dim 256 --z 128 --v 512 --warmup 0 --repeat 1 --budget-ms 0 -o /tmp/san.csv \
                2>&1 | tail -3 >> "$OUT/sanitizer.txt"
            echo "rc=${PIPESTATUS[0]}" >> "$OUT/sanitizer.txt"
        done
        grep -E "^==|rc=|ERROR SUMMARY|RACECHECK SUMMARY" "$OUT/sanitizer.txt"
    fi
fi
# compute-sanitizer memcheck and racecheck over every variant at small shapes (summary only).
if [ "$MODE" = san ] && command -v compute-sanitizer >/dev/null; then
    rm -f "$OUT/build.log"
    mkdir -p /tmp/san
    bash profiles/sanitize_gpu.sh $BIN /tmp/san | tee "$OUT/sanitizer.txt"
fi
# Cross-check of the CUPTI byte counts with Nsight Compute: every kernel of the
# process is profiled (ceilings off), ncu_bytes.py keeps the variant's kernels and
# halves the sum (verification run + one timed run).  ncu flushes caches before
# each kernel.
if { [ "$MODE" = all ] || [ "$MODE" = ncu ]; } && command -v ncu >/dev/null; then
    for cc in all none; do
    for v in linear_attn/chunked linear_attn/naive_cumsum long_conv/fft; do
        for T in 4096 65536; do
            f="$OUT/ncu_${cc}_${v//\//_}_$T"
            CHELA_NO_CEILINGS=1 ncu --clock-control none --cache-control $cc \
                --metrics dram__bytes_read.sum,dram__bytes_write.sum --csv \
                $BIN --seq $T --ops ${v%%/*} --variants ${v#*/} --warmup 0 --repeat 1 \
                --budget-ms 0 -o "$f.rows.csv" > "$f.csv" 2> "$f.log"
            echo "ncu --cache-control $cc $v T=$T: $(grep -c dram__bytes "$f.csv") metric rows"
        done
    done
    done
fi
# long_conv/fast v5 (two channels a transform at B = 1): GPU tests, the sweep beside cuFFT,
# B = 1 at every T with the pairing on and off (CHELA_LCF_XPAIR), the short-long conv, the
# layers (build.log dropped: at most 8 files come back).
if [ "$MODE" = xpair ]; then
    rm -f "$OUT/build.log"
    gpu_tests
    echo "== $BIN --seq 1k..64k --ops long_conv --profile"
    timeout 150 $BIN --seq 1k..64k --ops long_conv --profile -o "$OUT/conv.csv" \
        2>> "$OUT/run.log"; echo "rc=$?"; cols "$OUT/conv.csv"
    for xp in 1 0; do
        echo "== CHELA_LCF_XPAIR=$xp $BIN --seq 1k..64k --ops long_conv --variants fast --batch 1 --dtype fp32"
        CHELA_LCF_XPAIR=$xp timeout 100 $BIN --seq 1k..64k --ops long_conv --variants fast \
            --batch 1 --dtype fp32 -o "$OUT/b1_xpair$xp.csv" 2>> "$OUT/run.log"; echo "rc=$?"
        cols "$OUT/b1_xpair$xp.csv"
    done
    slc_sweep
    layer_sweep
fi
# long_conv/fast with 8192-point blocks (CHELA_LCF_BLOCK_POINTS=8192) beside the default, the
# layers with it, and Nsight Compute on the layer's ln_shortconv kernel (T = 4k) with its stall
# reasons.
if [ "$MODE" = bp ]; then
    rm -f "$OUT/build.log"
    gpu_tests
    for bp in 16384 8192; do
        echo "== CHELA_LCF_BLOCK_POINTS=$bp $BIN --seq 1k..64k --ops long_conv --variants fast --profile"
        CHELA_LCF_BLOCK_POINTS=$bp timeout 100 $BIN --seq 1k..64k --ops long_conv --variants fast \
            --profile -o "$OUT/conv_bp$bp.csv" 2>> "$OUT/run.log"; echo "rc=$?"; cols "$OUT/conv_bp$bp.csv"
    done
    if command -v ncu >/dev/null; then
        CHELA_NO_CEILINGS=1 timeout 200 ncu -k regex:ln_shortconv_tile -c 1 --section SpeedOfLight \
            --section MemoryWorkloadAnalysis --section WarpStateStats --section Occupancy \
            --section SchedulerStats --section LaunchStats \
            --metrics "regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio" \
            $BIN --seq 4096 --ops chela --warmup 0 --repeat 1 --budget-ms 0 -o /tmp/ncu_rows.csv \
            > "$OUT/ncu-ln.txt" 2>&1
        echo "ncu rc=$?"
    fi
    export CHELA_LCF_BLOCK_POINTS=8192
    layer_sweep
fi
# long_conv/fast v6 (radix-R0 digit fused into load and store, 8k as a cluster of two): GPU
# tests, compute-sanitizer on the FFT paths, the sweep beside cuFFT, B = 1 in fp32, the
# short-long conv and the layers.
if [ "$MODE" = v6 ]; then
    rm -f "$OUT/build.log"
    gpu_tests
    sanitize "--ops long_conv --variants fast --seq 3000,9000,20000 --batch 3 --dim 4" \
        "--ops long_conv --variants fast --seq 20000,40000 --batch 1 --dim 4"
    echo "== $BIN --seq 1k..64k --ops long_conv --profile"
    timeout 150 $BIN --seq 1k..64k --ops long_conv --profile -o "$OUT/conv.csv" \
        2>> "$OUT/run.log"; echo "rc=$?"; cols "$OUT/conv.csv"
    echo "== $BIN --seq 1k..64k --ops long_conv --variants fast --batch 1 --dtype fp32"
    timeout 100 $BIN --seq 1k..64k --ops long_conv --variants fast --batch 1 --dtype fp32 \
        -o "$OUT/b1.csv" 2>> "$OUT/run.log"; echo "rc=$?"; cols "$OUT/b1.csv"
    slc_sweep
    layer_sweep
fi
# chela/fused's ln_shortconv v6 (the U pass a lane per 4 channels): GPU tests, the layers.
if [ "$MODE" = ln ]; then
    rm -f "$OUT/build.log"
    gpu_tests
    layer_sweep
fi
# issue 5's rows at the final plan: the LM shape beside naive_cumsum, B = 1 over T, and
# compute-sanitizer on default multi-segment plans (no ceilings: cuBLAS is racecheck's false
# positive).
if [ "$MODE" = lmfinal ]; then
    rm -f "$OUT/build.log"
    echo "== $BIN --seq 1k..64k --ops linear_attn --profile"
    timeout 200 $BIN --seq 1k..64k --ops linear_attn --profile -o "$OUT/lm.csv" 2>> "$OUT/run.log"
    echo "rc=$?"; cut -d, -f7,11,17,27,32,33 "$OUT/lm.csv" | tail -n +2
    echo "== $BIN --seq 1k..64k --ops linear_attn --variants chunked --batch 1"
    timeout 100 $BIN --seq 1k..64k --ops linear_attn --variants chunked --batch 1 -o "$OUT/b1.csv" \
        2>> "$OUT/run.log"; echo "rc=$?"; cut -d, -f11,17,33 "$OUT/b1.csv" | tail -n +2
    sanitize "--ops linear_attn --variants chunked --seq 9000,20000 --batch 1 --heads 4" \
        "--ops linear_attn --variants chunked --seq 20000 --batch 1 --heads 1 --dk 128 --dv 256"
fi
# linear_attn v6 (pass C on wgmma): GPU tests, the CHELA head with v6 (plans printed) and v3
# beside it, the LM shape, the layer, memcheck / racecheck of v6 with segments, and Nsight
# Compute on v6's output kernel at the CHELA head, T = 4k.
if [ "$MODE" = wg ]; then
    rm -f "$OUT/build.log"
    gpu_tests
    HEAD="--heads 1 --dk 128 --dv 2048"
    for ver in 6 3; do
        echo "== CHELA_LA_VERSION=$ver CHELA_LA_PLAN=1 $BIN --seq 1k..64k --ops linear_attn --variants chunked $HEAD --profile"
        CHELA_LA_VERSION=$ver CHELA_LA_PLAN=1 timeout 100 $BIN --seq 1k..64k --ops linear_attn \
            --variants chunked $HEAD --profile -o "$OUT/la_head_v$ver.csv" 2>> "$OUT/run.log"
        echo "rc=$?"; cols "$OUT/la_head_v$ver.csv"
    done
    grep -h "plan" "$OUT/run.log" | sort -u | cut -c30-200 | head -20
    echo "== $BIN --seq 1k..64k --ops linear_attn --variants chunked --profile"
    timeout 100 $BIN --seq 1k..64k --ops linear_attn --variants chunked --profile \
        -o "$OUT/la_lm.csv" 2>> "$OUT/run.log"; echo "rc=$?"; cols "$OUT/la_lm.csv"
    [ "${WG_QUICK:-0}" = 1 ] && exit 0 # WG_QUICK=1: tests and the attention sweeps only
    layer_sweep
    echo "== CHELA_LA_VERSION=3 $BIN --seq 4k,64k --ops chela --breakdown (the layer's attention on v3)"
    CHELA_LA_VERSION=3 timeout 100 $BIN --seq 4k,64k --ops chela --breakdown -o "$OUT/layer_v3.csv" \
        2>> "$OUT/run.log"; echo "rc=$?"
    grep -h "linear_attn_gate" "$OUT/layer.csv" "$OUT/layer_v3.csv" | cut -d, -f7,11,17,26,27
    sanitize "--ops linear_attn --variants chunked --seq 1000,20000 --batch 1 --heads 1 --dk 128 --dv 256" \
        "--ops linear_attn --variants chunked --seq 3001 --batch 2 --heads 1 --dk 64 --dv 128 --dtype fp16"
    if command -v ncu >/dev/null; then
        CHELA_NO_CEILINGS=1 timeout 120 ncu -k regex:"v6_(output|state)_kernel" -c 2 --section SpeedOfLight \
            --section Occupancy --section WarpStateStats --section ComputeWorkloadAnalysis \
            --section MemoryWorkloadAnalysis $BIN --seq 64k --ops linear_attn --variants chunked \
            $HEAD --warmup 0 --repeat 1 --budget-ms 0 -o /tmp/ncu.csv > "$OUT/ncu.txt" 2>&1
        echo "ncu rc=$?"
        CHELA_NO_CEILINGS=1 timeout 120 ncu -k regex:"v6_output_kernel" -c 1 --section SpeedOfLight \
            --section Occupancy --section WarpStateStats --section ComputeWorkloadAnalysis \
            --section MemoryWorkloadAnalysis $BIN --seq 4k --ops chela --warmup 0 --repeat 1 \
            --budget-ms 0 -o /tmp/ncu2.csv > "$OUT/ncu_layer.txt" 2>&1
        echo "ncu (layer) rc=$?"
        grep -hE "Duration|Throughput|Issue Slots|Registers|Warp Cycles Per Issued|highest-utilized" \
            "$OUT/ncu.txt" "$OUT/ncu_layer.txt" | cut -c1-110 | head -40
    fi
    grep -hE "fail|skip" "$OUT/run.log" | cut -c1-250 | head
fi
# v6 at its final code: GPU tests, the CHELA head twice (the numbers for issue 5), the LM shape,
# the layer, and memcheck / racecheck of v6 with segments and pass-A parts.
if [ "$MODE" = wgfinal ]; then
    rm -f "$OUT/build.log"
    gpu_tests
    HEAD="--heads 1 --dk 128 --dv 2048"
    for rep in 1 2; do
        echo "== rep $rep CHELA_LA_PLAN=1 $BIN --seq 1k..64k --ops linear_attn --variants chunked $HEAD --profile"
        CHELA_LA_PLAN=1 timeout 100 $BIN --seq 1k..64k --ops linear_attn --variants chunked $HEAD \
            --profile -o "$OUT/la_head_$rep.csv" 2>> "$OUT/run.log"; echo "rc=$?"
        cols "$OUT/la_head_$rep.csv"
    done
    echo "== $BIN --seq 1k..64k --ops linear_attn --variants chunked --profile"
    timeout 100 $BIN --seq 1k..64k --ops linear_attn --variants chunked --profile \
        -o "$OUT/la_lm.csv" 2>> "$OUT/run.log"; echo "rc=$?"; cols "$OUT/la_lm.csv"
    layer_sweep
    CHELA_LA_SUB=3 sanitize "--ops linear_attn --variants chunked --seq 1000,20000 --batch 1 --heads 1 --dk 128 --dv 256"
    grep -hE "fail|skip" "$OUT/run.log" | cut -c1-250 | head
fi
# Session 8's helpers: the layers with cuBLASLt's choices printed (lt_plan.txt), the layers
# untuned (CHELA_LT_TUNE=0) for the A/B, the CHELA head sweep, and Nsight Compute's
# per-instruction stall samples of the gated attention kernel at T = 4k (the source page as CSV).
tuned_layers() {
    CHELA_LT_PLAN=1 layer_sweep
    grep -h "lt_tune" "$OUT/run.log" | sort | uniq -c | head -70 > "$OUT/lt_plan.txt"
}
untuned_layers() { # $1: the --seq list, then extra flags
    local seq=$1
    shift
    echo "== CHELA_LT_TUNE=0 $BIN --seq $seq --ops chela,transformer $*"
    CHELA_LT_TUNE=0 timeout 200 $BIN --seq "$seq" --ops chela,transformer "$@" \
        -o "$OUT/layer_notune.csv" 2>> "$OUT/run.log"; echo "rc=$?"
    cut -d, -f7,11,17,33 "$OUT/layer_notune.csv" | tail -n +2
}
head_sweep() { # $1: extra flags (--profile)
    local HEAD="--heads 1 --dk 128 --dv 2048"
    echo "== $BIN --seq 1k..64k --ops linear_attn --variants chunked $HEAD $*"
    timeout 100 $BIN --seq 1k..64k --ops linear_attn --variants chunked $HEAD "$@" \
        -o "$OUT/la_head.csv" 2>> "$OUT/run.log"; echo "rc=$?"; cols "$OUT/la_head.csv"
}
gated_ncu() {
    command -v ncu >/dev/null || return 0
    CHELA_NO_CEILINGS=1 timeout 200 ncu --set full --import-source no -k regex:"v6_output_kernel" \
        -c 1 -o /tmp/gated $BIN --seq 4k --ops chela --warmup 0 --repeat 1 --budget-ms 0 \
        -o /tmp/ncu2.csv > "$OUT/ncu_gated.txt" 2>&1
    echo "ncu rc=$?"
    ncu --import /tmp/gated.ncu-rep --page source --print-source sass --csv \
        > "$OUT/gated_sass.csv" 2>> "$OUT/ncu_gated.txt"
    ncu --import /tmp/gated.ncu-rep --page details >> "$OUT/ncu_gated.txt" 2>&1
    grep -hE "Duration|Issue Slots|Registers|Warp Cycles Per Issued|highest" \
        "$OUT/ncu_gated.txt" | cut -c1-120 | head -12
}
# lt: the tuner's first form with the A/B at four points and the gated kernel's stalls;
# gate: the gate through shared memory, with the layer's sanitizer run; gate2: the attention
# sweeps beside the layers, and racecheck with and without tuning; tune2: the A/B over the sweep;
# tune3: the session's final code (A/B, the CHELA head, the layer's sanitizer run).
LAYER_Z128="--ops chela --seq 70,1000 --batch 1 --dim 128 --z 128 --v 256"
case "$MODE" in
lt | gate | gate2 | tune2 | tune3)
    rm -f "$OUT/build.log"
    gpu_tests
    tuned_layers ;;
esac
case "$MODE" in
lt) untuned_layers 1k,2k,4k,64k --breakdown; gated_ncu ;;
gate) sanitize "$LAYER_Z128"; gated_ncu ;;
gate2)
    head_sweep --profile
    echo "== $BIN --seq 1k..64k --ops linear_attn --variants chunked --profile"
    timeout 100 $BIN --seq 1k..64k --ops linear_attn --variants chunked --profile \
        -o "$OUT/la_lm.csv" 2>> "$OUT/run.log"; echo "rc=$?"; cols "$OUT/la_lm.csv"
    if command -v compute-sanitizer >/dev/null; then
        for tune in 0 1; do
            echo "== CHELA_LT_TUNE=$tune racecheck --ops chela --seq 1000 --dim 128 --z 128 --v 256" | tee -a "$OUT/sanitizer.txt"
            CHELA_LT_TUNE=$tune CHELA_NO_CEILINGS=1 timeout 240 compute-sanitizer --tool racecheck \
                --error-exitcode 9 $BIN --ops chela --seq 1000 --batch 1 --dim 128 --z 128 --v 256 \
                --warmup 0 --repeat 1 --budget-ms 0 -o /tmp/san.csv > /tmp/san.log 2>&1
            echo "rc=$?" | tee -a "$OUT/sanitizer.txt"
            grep -v "^=========     " /tmp/san.log | tail -12 | cut -c1-200 | tee -a "$OUT/sanitizer.txt"
        done
    fi ;;
tune2) untuned_layers 1k..64k ;;
tune3) untuned_layers 1k..64k; head_sweep --profile; sanitize "$LAYER_Z128" ;;
esac
case "$MODE" in
lt | gate | gate2 | tune2 | tune3) grep -hE "fail|skip" "$OUT/run.log" | cut -c1-250 | head ;;
esac
# lcw (session 9): the Toeplitz product on wgmma (long_conv_toeplitz v5): the GPU tests, the long
# conv over the sweep, v4 beside it at 1k / 2k and the FFT path at 4k (the A/B), the short-long
# conv forms, the layers, Nsight Compute on the kernel at 2k, and its sanitizer runs.
lcw_ncu() {
    command -v ncu >/dev/null || return 0
    CHELA_NO_CEILINGS=1 timeout 200 ncu --set full -k regex:"lcw_kernel" -c 1 -f -o /tmp/lcw \
        $BIN --seq ${NCU_SEQ:-2k} --ops long_conv --variants fast --warmup 0 --repeat 1 --budget-ms 0 \
        -o /tmp/ncu3.csv > "$OUT/ncu_lcw.txt" 2>&1
    echo "ncu rc=$?"
    ncu --import /tmp/lcw.ncu-rep --page details >> "$OUT/ncu_lcw.txt" 2>&1
    ncu --import /tmp/lcw.ncu-rep --page source --print-source sass --csv \
        > "$OUT/lcw_sass.csv" 2>> "$OUT/ncu_lcw.txt"
    grep -hE "Duration|Issue Slots|Registers|Warp Cycles Per Issued|Tensor|highest|Throughput|Eligible|Occupancy" \
        "$OUT/ncu_lcw.txt" | cut -c1-120 | head -24
}
if [ "$MODE" = lcw ]; then
    rm -f "$OUT/build.log"
    gpu_tests
    conv_sweep
    echo "== CHELA_LCT_VERSION=4 $BIN --seq 1k,2k --ops long_conv --variants fast; CHELA_LCF_TOEPLITZ_MAX_T=2048 --seq 4k"
    CHELA_LCT_VERSION=4 timeout 60 $BIN --seq 1k,2k --ops long_conv --variants fast \
        -o "$OUT/conv_v4.csv" 2>> "$OUT/run.log"; echo "rc=$?"; cols "$OUT/conv_v4.csv"
    CHELA_LCF_TOEPLITZ_MAX_T=2048 timeout 60 $BIN --seq 4k --ops long_conv --variants fast \
        -o "$OUT/conv_fft4k.csv" 2>> "$OUT/run.log"; echo "rc=$?"; cols "$OUT/conv_fft4k.csv"
    echo "== CHELA_LCF_TOEPLITZ_MAX_T=8192 $BIN --seq 8k --ops long_conv --variants fast"
    CHELA_LCF_TOEPLITZ_MAX_T=8192 timeout 60 $BIN --seq 8k --ops long_conv --variants fast \
        -o "$OUT/conv_v5_8k.csv" 2>> "$OUT/run.log"; echo "rc=$?"; cols "$OUT/conv_v5_8k.csv"
    [ "${LCW_QUICK:-0}" = 1 ] || { slc_sweep; layer_sweep; }
    lcw_ncu
    [ "${LCW_QUICK:-0}" = 1 ] || sanitize "--ops long_conv,short_long_conv --seq 300,2048,2100,4000 --batch 17 --dim 4"
    # session 10: v5 forced past its default range (two and four warpgroups a block)
    [ "${LCW_QUICK:-0}" = 1 ] || CHELA_LCF_TOEPLITZ_MAX_T=8192 \
        sanitize "--ops long_conv --variants fast --seq 7000,8192 --batch 9 --dim 4"
    grep -hE "fail|skip" "$OUT/run.log" | cut -c1-250 | head
    # at most 8 files come back from a run: the small ones in one tar
    (cd "$OUT" && tar cf extras.tar --remove-files gpu.txt ctest.log run.log conv_v4.csv conv_fft4k.csv \
        conv_v5_8k.csv $(ls ncu_lcw.txt sanitizer.txt 2> /dev/null))
fi
# sched (session 10): long_conv_toeplitz v5's shapes at 1k / 2k / 4k after the GPU tests: each word of
# SCHEDS is one environment setting (CHELA_LCW_U / CHELA_LCW_W; "-" the default), each one's rows in
# sched.tar; Nsight Compute on the default at NCU_SEQ (2k); compute-sanitizer on the long conv forms.
if [ "$MODE" = sched ]; then
    rm -f "$OUT/build.log"
    gpu_tests
    i=0
    for s in ${SCHEDS:--}; do
        i=$((i + 1))
        [ "$s" = - ] && s=CHELA_LCW_DEFAULT=1
        echo "== $s $BIN --seq 1k,2k,4k --ops long_conv --variants fast --profile"
        env "$s" timeout 90 $BIN --seq 1k,2k,4k --ops long_conv --variants fast --profile \
            -o /tmp/sched$i.csv 2>> "$OUT/run.log"; echo "rc=$?"; cols /tmp/sched$i.csv
    done
    (cd /tmp && tar cf "$OUT/sched.tar" sched*.csv)
    lcw_ncu
    [ "${LCW_QUICK:-0}" = 1 ] || sanitize "--ops long_conv,short_long_conv --seq 300,2048,2100,4000 --batch 17 --dim 4"
    grep -hE "fail|skip" "$OUT/run.log" | cut -c1-250 | head
fi
# narrow (session 11): the GPU tests; long_conv_fast v7's narrow copy against the 512-thread one
# (CHELA_LCF_NARROW=0) twice, at 8k, at 4k on the FFT path and at fp32 B = 1, where the rule keeps
# the wide copy; then the layers' whole calls at 2k / 4k, default sampling and 20 samples only,
# beside an nvidia-smi trace of SM clock, power and clock-event reasons (smi.csv, marks.txt).
if [ "$MODE" = narrow ]; then
    rm -f "$OUT/build.log"
    gpu_tests
    for rep in 1 2; do for nar in 0 dflt; do
        e=CHELA_LCF_NARROW=$nar; [ $nar = dflt ] && e=CHELA_LCF_NARROW_UNSET=1
        echo "== rep $rep $e: 8k bf16; 4k bf16 FFT path; fp32 B = 1 4k, 8k"
        env $e timeout 60 $BIN --seq 8k --ops long_conv --variants fast -o /tmp/n8.csv 2>> "$OUT/run.log"
        env $e CHELA_LCF_TOEPLITZ_MAX_T=2048 timeout 60 $BIN --seq 4k --ops long_conv --variants fast \
            -o /tmp/n4.csv 2>> "$OUT/run.log"
        env $e timeout 60 $BIN --seq 4k,8k --ops long_conv --variants fast --dtype fp32 --batch 1 \
            -o /tmp/nf.csv 2>> "$OUT/run.log"
        for f in n8 n4 nf; do cols /tmp/$f.csv; tail -n +2 /tmp/$f.csv | sed "s/^/$rep,$nar,/" >> /tmp/narrow_ab.txt; done
    done; done
    head -1 /tmp/n8.csv | sed 's/^/rep,narrow,/' > "$OUT/narrow_ab.csv"; cat /tmp/narrow_ab.txt >> "$OUT/narrow_ab.csv"
    q=clocks_event_reasons.active
    nvidia-smi --query-gpu=timestamp,$q --format=csv > /dev/null 2>&1 || q=clocks_throttle_reasons.active
    nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,temperature.gpu,$q --format=csv -lms 20 \
        > "$OUT/smi.csv" 2>&1 &
    SMI=$!
    for op in chela transformer; do for T in 2k 4k; do for how in default short; do
        extra=""; [ $how = short ] && extra="--repeat 20 --budget-ms 0"
        echo "start $op $T $how $(date +%Y/%m/%d\ %H:%M:%S.%N)" >> "$OUT/marks.txt"
        timeout 90 $BIN --seq $T --ops $op $extra -o /tmp/clk.csv 2>> "$OUT/run.log"
        echo "end $op $T $how $(date +%Y/%m/%d\ %H:%M:%S.%N)" >> "$OUT/marks.txt"
        tail -n +2 /tmp/clk.csv | sed "s/^/$how,/" >> /tmp/clk_all.txt
        echo "$op $T $how: $(cut -d, -f7,11,16,17,18,19,20 /tmp/clk.csv | tail -n +2)"
    done; done; done
    kill $SMI
    head -1 /tmp/clk.csv | sed 's/^/sampling,/' > "$OUT/clock_ab.csv"; cat /tmp/clk_all.txt >> "$OUT/clock_ab.csv"
    grep -hE "fail|skip" "$OUT/run.log" | cut -c1-250 | head
    (cd "$OUT" && tar cf extras.tar --remove-files gpu.txt ctest.log run.log marks.txt)
fi
# record (session 11): the GPU tests, then the sweeps of record: long_conv, short_long_conv, both
# layers with the breakdown, both layers again at 20 samples a point (layer_short.csv: before the
# power cap bites), then compute-sanitizer on the narrow FFT copy.
if [ "$MODE" = record ]; then
    rm -f "$OUT/build.log"
    gpu_tests
    conv_sweep
    slc_sweep
    layer_sweep
    echo "== $BIN --seq 1k..64k --ops chela,transformer --repeat 20 --budget-ms 0"
    timeout 200 $BIN --seq 1k..64k --ops chela,transformer --repeat 20 --budget-ms 0 \
        -o "$OUT/layer_short.csv" 2>> "$OUT/run.log"; echo "rc=$?"
    cut -d, -f4,7,11,17,18,19,34 "$OUT/layer_short.csv" | tail -n +2
    CHELA_LCF_NARROW=1 sanitize "--ops long_conv,short_long_conv --seq 3000,8192 --batch 3 --dim 4"
    grep -hE "fail|skip" "$OUT/run.log" | cut -c1-250 | head
    (cd "$OUT" && tar cf extras.tar --remove-files gpu.txt ctest.log run.log $(ls sanitizer.txt 2> /dev/null))
fi
