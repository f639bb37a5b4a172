#!/usr/bin/env bash
# run_experiments.sh OUTDIR [SHA] EXP...: build once (SHA into every row; default: git's short
# HEAD), then run each EXP: gpu-tests (ctest -L gpu) or profiles/experiments/EXP.txt (or a path).
# An experiment file holds one chela-bench argument line a line ('#' comments; words split on
# blanks, no quoting). `-o F` writes OUTDIR/F (default OUTDIR/EXP-N.csv), stderr goes to
# OUTDIR/EXP.log, and `chela-bench show` prints the rows. A line may start with NAME=VALUE words
# (its own environment) or a kind:
#   compare A.csv B.csv [OPTS]   or show: files are looked up in OUTDIR, then in the repository;
#                                compare's exit 1 is a verdict, not a failed line
#   sanitize ARGS                compute-sanitizer memcheck and racecheck over chela-bench ARGS
#   ncu [NCU OPTIONS] -- ARGS    Nsight Compute over chela-bench ARGS, its text into OUTDIR
# (these two add --no-ceilings --warmup 0 --repeat 1 --budget-ms 0: one timed run).
# Environment: BUILD (default build-exp), DEBS (.deb folder, default .debs), LINE_TIMEOUT (s,
# default 600), TEST_TIMEOUT (s a GPU test, default 300), GPU_TESTS (a ctest -R regex: which
# GPU tests gpu-tests runs; default all), SHOW_COLS, SMI_MS (an nvidia-smi trace
# of SM clock, power and clock-event
# reasons every SMI_MS ms into OUTDIR/smi.csv while the experiments run), ARCHIVE=1 (at the end,
# OUTDIR becomes one OUTDIR.tgz: a remote runner that brings back only a few files then loses
# nothing; a run cut short by a timeout leaves the folder).
set -uo pipefail
usage="usage: run_experiments.sh OUTDIR [SHA] EXP...  (EXP: gpu-tests or profiles/experiments/*.txt)"
[ $# -ge 1 ] || { echo "$usage" >&2; exit 2; }
mkdir -p "$1" && OUTDIR=$(cd "$1" && pwd) && shift || exit 2
exps=()
for a in "$@"; do [ -f "$a" ] && a=$(cd "$(dirname "$a")" && pwd)/$(basename "$a"); exps+=("$a"); done
cd "$(dirname "$0")/.." || exit 2
EXPDIR=profiles/experiments
is_exp() { [ "$1" = gpu-tests ] || [ -f "$EXPDIR/$1.txt" ] || [ -f "$1" ]; }
SHA=""
if [ ${#exps[@]} -gt 0 ] && ! is_exp "${exps[0]}"; then SHA=${exps[0]}; exps=("${exps[@]:1}"); fi
[ -n "$SHA" ] || SHA=$(git rev-parse --short HEAD 2> /dev/null) || SHA=unknown
[ ${#exps[@]} -gt 0 ] || { echo "$usage" >&2; ls $EXPDIR >&2; exit 2; }
for e in "${exps[@]}"; do is_exp "$e" || { echo "no experiment $e" >&2; exit 2; }; done
TMO=${LINE_TIMEOUT:-600} COLS=${SHOW_COLS:-variant,seq,median_ms,floor_ratio,config,status}
mkdir -p "${BUILD:=build-exp}" && BUILD=$(cd "$BUILD" && pwd) && BIN=$BUILD/chela-bench
# Check and pkg-config may be missing on the GPU machine, with no package manager to use: the
# Debian packages in DEBS are unpacked (dpkg -x, no root) into a private prefix, and
# PKG_CONFIG_SYSROOT_DIR points check.pc's /usr paths into it.
if compgen -G "${DEBS:=.debs}/*.deb" > /dev/null; then
    P=$BUILD/deb-prefix
    mkdir -p "$P" && for f in "$DEBS"/*.deb; do dpkg -x "$f" "$P"; done
    A=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2> /dev/null || echo x86_64-linux-gnu)
    export PATH=$P/usr/bin:$PATH LD_LIBRARY_PATH=$P/usr/lib/$A${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    export PKG_CONFIG_PATH=$P/usr/lib/$A/pkgconfig PKG_CONFIG_SYSROOT_DIR=$P
fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.draw,power.limit,temperature.gpu \
    --format=csv 2>&1 | tee "$OUTDIR/gpu.txt"
{ cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCHELA_GIT_SHA="$SHA" &&
    cmake --build "$BUILD" -j "$(nproc)"; } > "$OUTDIR/build.log" 2>&1 || { tail -40 "$OUTDIR/build.log"; exit 1; }
echo "build ok: $SHA"
if [ -n "${SMI_MS:-}" ]; then
    q=clocks_event_reasons.active # older drivers: clocks_throttle_reasons.active
    nvidia-smi --query-gpu=timestamp,$q --format=csv > /dev/null 2>&1 || q=clocks_throttle_reasons.active
    nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,temperature.gpu,$q --format=csv -lms "$SMI_MS" \
        > "$OUTDIR/smi.csv" 2>&1 &
    SMI=$!
    trap 'kill $SMI 2> /dev/null' EXIT
fi
fails=0
run_line() { # EXP N WORD...: one line of an experiment file
    local exp=$1 n=$2 kind=run rc out="" w envs=() args=() nopts=()
    shift 2
    while [ $# -gt 0 ] && [[ $1 =~ ^[A-Za-z_][A-Za-z0-9_]*= ]]; do envs+=("$1"); shift; done
    case ${1:-} in compare | show | sanitize | ncu) kind=$1; shift ;; esac
    local log=$OUTDIR/$exp.log one=(--no-ceilings --warmup 0 --repeat 1 --budget-ms 0)
    local E=(env ${envs[@]+"${envs[@]}"}) pre="${envs[*]:+${envs[*]} }"
    [ "$kind" = run ] || pre+="$kind "
    echo "== [$exp:$n $(date -u +%T)] $pre$*" | tee -a "$log"
    case $kind in
    run)
        while [ $# -gt 0 ]; do
            if [ "$1" = -o ] && [ $# -gt 1 ]; then out=$2; [[ $out == /* ]] || out=$OUTDIR/$out; shift 2; continue; fi
            args+=("$1"); shift
        done
        "${E[@]}" timeout "$TMO" "$BIN" "${args[@]}" -o "${out:=$OUTDIR/$exp-$n.csv}" 2>> "$log"
        rc=$? && echo "rc=$rc" | tee -a "$log"
        [ -s "$out" ] && "$BIN" show "$out" --cols "$COLS" ;;
    compare | show)
        for w in "$@"; do [[ $w != -* && -e $OUTDIR/$w ]] && w=$OUTDIR/$w; args+=("$w"); done
        "${E[@]}" "$BIN" "$kind" "${args[@]}" 2>> "$log" | tee -a "$OUTDIR/$exp.$kind.txt"
        rc=${PIPESTATUS[0]} && echo "rc=$rc" | tee -a "$OUTDIR/$exp.$kind.txt" "$log"
        [ "$kind" = compare ] && [ "$rc" = 1 ] && rc=0 ;;
    sanitize)
        for w in memcheck racecheck; do
            echo "== [$exp:$n] ${pre%sanitize }compute-sanitizer --tool $w chela-bench $*" >> "$OUTDIR/$exp.sanitizer.txt"
            "${E[@]}" timeout "$TMO" compute-sanitizer --tool $w --error-exitcode 9 "$BIN" "$@" "${one[@]}" \
                -o "$OUTDIR/$exp-$n-san.csv" > "$OUTDIR/.san.log" 2>&1
            rc=$?
            # the summaries; a failing run's own last words (the program's, not the sanitizer's)
            { grep -E "SUMMARY" "$OUTDIR/.san.log"; [ $rc = 0 ] || grep -v "^=========" "$OUTDIR/.san.log" | tail -6 |
                cut -c1-250; echo "rc=$rc"; } >> "$OUTDIR/$exp.sanitizer.txt"
            echo "$w rc=$rc $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUTDIR/.san.log" | tail -1)"
            [ $rc = 0 ] || fails=$((fails + 1))
        done
        rm -f "$OUTDIR/.san.log"
        return ;;
    ncu)
        while [ $# -gt 0 ] && [ "$1" != -- ]; do nopts+=("$1"); shift; done
        [ $# -gt 0 ] && shift
        out=$OUTDIR/$exp-$n.ncu.txt
        "${E[@]}" timeout "$TMO" ncu ${nopts[@]+"${nopts[@]}"} "$BIN" "$@" "${one[@]}" -o "$OUTDIR/$exp-$n-ncu.csv" \
            > "$out" 2>&1
        rc=$? && echo "ncu rc=$rc: $(grep -c . "$out") lines in $(basename "$out")"
        if grep -q dram__bytes "$out"; then python3 profiles/ncu_bytes.py "$out"; fi ;;
    esac
    [ "$rc" = 0 ] || fails=$((fails + 1))
}
for e in "${exps[@]}"; do
    if [ "$e" = gpu-tests ]; then
        (cd "$BUILD" && timeout 900 ctest -L gpu -R "${GPU_TESTS:-.}" --timeout "${TEST_TIMEOUT:-300}" --output-on-failure) > "$OUTDIR/ctest.log" 2>&1
        rc=$? && echo "== gpu-tests rc=$rc"
        grep -E "tests passed|Failed|Skipped|\*\*\*" "$OUTDIR/ctest.log" | tail -20
        [ $rc = 0 ] || fails=$((fails + 1)); continue
    fi
    f=$e && [ -f "$EXPDIR/$e.txt" ] && f=$EXPDIR/$e.txt
    name=$(basename "$f" .txt) n=0
    while IFS= read -r line || [ -n "$line" ]; do
        n=$((n + 1)) && read -ra w <<< "${line%%#*}"
        [ ${#w[@]} -gt 0 ] && run_line "$name" "$n" "${w[@]}" < /dev/null
    done < "$f"
    grep -hE "fail|skip" "$OUTDIR/$name.log" 2> /dev/null | cut -c1-250 | head
done
echo "done: $fails failed line(s); results in $OUTDIR"
if [ -n "${ARCHIVE:-}" ]; then
    tar czf "$OUTDIR.tgz" -C "$(dirname "$OUTDIR")" "$(basename "$OUTDIR")" && rm -rf "$OUTDIR" &&
        echo "archived: $OUTDIR.tgz"
fi
[ $fails = 0 ]
