#!/usr/bin/env bash
# bench_cli.sh: the chela-bench binary as a user meets it.  Bad input: a
# non-zero exit, exactly one line on stderr, and no results file left behind.
# A CPU sweep: a complete CSV, one ok row per op x length (6 ops x 4 lengths).
set -u
. "$(dirname "$0")/cli_lib.sh"

expect_error() {
    local err rc lines
    local backend=(--backend cpu)
    case " $* " in *" --backend "*) backend=() ;; esac
    err=$("$B" "${backend[@]}" -o "$work/never.csv" "$@" 2>&1 >/dev/null)
    rc=$?
    lines=$(printf '%s\n' "$err" | grep -c .)
    if [ "$rc" -eq 0 ] || [ "$lines" -ne 1 ]; then
        bad "chela-bench $* -> rc=$rc, $lines line(s): $err"
    elif ls "$work" | grep -q never; then
        bad "chela-bench $* left a results file behind"
    else
        ok
    fi
}

expect_error --seq 0
expect_error --seq 64k..1k
expect_error --seq 1k..
expect_error --seq abc
expect_error --seq 99999999999k
expect_error --seq
expect_error --ops linear_attn,nonsense
expect_error --tokens 1024 --batch 2
expect_error --head-dim 64 --dk 128
expect_error --dtype int4
expect_error --heads 0
expect_error --warmup -1
expect_error --no-such-option
expect_error --pass backward
expect_error --pass fwd,,bwd
expect_error --pass bwd,bwd
expect_error --pass
# settings (--set): an unknown name, a value outside the allowed ones, a malformed word,
# a name none of the selected variants has
expect_error --set nonsense=1
expect_error --set la_seg=5
expect_error --set la_seg=abc
expect_error --set la_seg
expect_error --set la_seg=64,,128
expect_error --ops long_conv --set la_seg=128
# unwritable output path: refused before any work
err=$("$B" --backend cpu --seq 64 -o /nonexistent-dir/r.csv 2>&1 >/dev/null); rc=$?
if [ $rc -ne 0 ] && [ "$(printf '%s\n' "$err" | grep -c .)" -eq 1 ]; then ok; else bad "unwritable -o: rc=$rc $err"; fi

# --device out of range: one line, non-zero, with or without a GPU
expect_error --backend cuda --device 99
# a length beyond what the backend can do is a recorded skip, not a crash
if "$B" --backend cpu --seq 4096k --ops long_conv -o "$work/big.csv" 2>/dev/null &&
    tail -n +2 "$work/big.csv" | awk -F, '$33 ~ /^skip:/' | grep -q .; then ok; else
    bad "--seq 4096k on the cpu backend: no skip row"; fi

# (signals, -o targets and filters: output_cli.sh)

"$B" --version >/dev/null && ok || bad "--version"
# cuDNN, an optional dependency: --version says whether the build has it, and a build without
# it still lists softmax_attn/cudnn, as unavailable with the reason (its GPU rows are
# skip:unavailable: test_gpu_variants)
ver=$("$B" --version)
cudnn_line=$(printf '%s\n' "$ver" | grep '^cuDNN: ')
case "$cudnn_line" in
"cuDNN: built with "*", running "*) ok ;;
"cuDNN: not built"*) ok ;;
*) bad "--version: no cuDNN line (got: $cudnn_line)" ;;
esac
list=$("$B" --list)
printf '%s\n' "$list" | grep -q "softmax_attn/cudnn" && ok || bad "--list without softmax_attn/cudnn"
if [[ $cudnn_line == "cuDNN: not built"* ]]; then
    printf '%s\n' "$list" | grep -A1 "softmax_attn/cudnn" |
        grep -q "unavailable: built without cuDNN" && ok || bad "--list: cudnn not said unavailable"
fi
printf '%s\n' "$list" | grep -q -- "--set attn=auto|cudnn|flash" && ok || bad "--list: no attn setting"
"$B" --help | grep -q -- "--seq" && ok || bad "--help"
"$B" --list | grep -q "linear_attn/chunked" && ok || bad "--list"
"$B" --list | grep -q -- "--set la_seg=auto|64..1048576" && ok || bad "--list without the settings"
err=$("$B" --backend cpu --seq 64 --ops linear_attn --set la_seg=128,256 -o "$work/set.csv" 2>&1 >/dev/null)
[[ $err == *"--set does nothing on the cpu backend"* ]] && ok || bad "--set on the cpu: no note"

# A CPU sweep: one ok row per op x length (7 ops x 4 lengths), one sample each to
# keep the sanitizer build's run short (the default sampling is output_cli.sh's).
if "$B" --backend cpu --seq 128..1k --repeat 1 --budget-ms 0 -o "$work/cpu.csv" 2>"$work/cpu.log"; then
    rows=$(tail -n +2 "$work/cpu.csv" | wc -l)
    okrows=$(tail -n +2 "$work/cpu.csv" | awk -F, '$33 == "ok"' | wc -l)
    cpu=$(tail -n +2 "$work/cpu.csv" | awk -F, '$5 == "cpu"' | wc -l)
    if [ "$rows" -eq 28 ] && [ "$okrows" -eq 28 ] && [ "$cpu" -eq 28 ]; then ok; else
        bad "cpu sweep: $rows rows, $okrows ok, $cpu cpu (want 28 each)"; fi
    head -1 "$work/cpu.csv" | grep -q '^schema,git_sha,device' && ok || bad "cpu sweep header"
    ls "$work" | grep -q 'cpu.csv.tmp' && bad "temp file left behind" || ok
else
    bad "cpu sweep exited non-zero: $(tail -3 "$work/cpu.log")"
fi

# --pass: each pass a row of its own (the pass column); the CPU backend times the gradient
# references for bwd / fwdbwd, and an op without a backward (mega's layer) is a skip row.
if "$B" --backend cpu --seq 64 --ops long_conv,mega --pass fwd,bwd,fwdbwd --repeat 1 \
    --budget-ms 0 -o "$work/pass.csv" 2>"$work/pass.log"; then
    got=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
                   { printf "%s/%s/%s ", $c["op"], $c["pass"], $c["status"] }' "$work/pass.csv")
    want="long_conv/fwd/ok long_conv/bwd/ok long_conv/fwdbwd/ok mega/fwd/ok "
    want+="mega/bwd/skip:unsupported mega/fwdbwd/skip:unsupported "
    [ "$got" = "$want" ] && ok || bad "--pass rows: '$got', want '$want'"
else
    bad "--pass cpu sweep exited non-zero: $(tail -3 "$work/pass.log")"
fi

finish
