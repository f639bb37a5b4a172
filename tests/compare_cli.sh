#!/usr/bin/env bash
# compare_cli.sh: the regression gate on fixture CSVs (a real H100 run and
# edits of it): exit 0 clean, 1 regression, 2 unusable input; never a crash.
set -u
. "$(dirname "$0")/cli_lib.sh"
BASE=${FIXTURES:?set FIXTURES to tests/fixtures}/compare_base.csv
expect() { # expect RC GREP-PATTERN -- args...
    local want=$1 pat=$2
    shift 3
    local out rc
    out=$("$B" compare "$@" 2>&1)
    rc=$?
    if [ "$rc" -eq "$want" ] && printf '%s\n' "$out" | grep -qE -- "$pat"; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL: compare $* -> rc=$rc (want $want), pattern '$pat'"
        printf '%s\n' "$out" | tail -3
    fi
}
# columns: 17 median_ms 18 p10 19 p90 20 min 21 stdrel 33 status
edit() { awk -F, -v OFS=, "$1" "$BASE" > "$work/$2"; }

expect 0 "SLOWER, 0 BROKEN, 0 MISSING -> ok" -- "$BASE" "$BASE"
# noisy but the same: every median +-1.5% alternately, spread as recorded
edit 'NR>1 && $33=="ok" {f = (NR % 2) ? 1.015 : 0.985; $17*=f; $18*=f; $19*=f; $20*=f} 1' noisy.csv
expect 0 "0 SLOWER.*-> ok" -- "$BASE" "$work/noisy.csv"
# one row 10% slower (its whole distribution moves)
edit 'NR>1 && $7=="linear_attn/chunked" && $11==4096 {$17*=1.10; $18*=1.10; $19*=1.10; $20*=1.10} 1' slow.csv
expect 1 "^SLOWER +linear_attn/chunked .*4096" -- "$BASE" "$work/slow.csv"
expect 0 "-> ok" -- --max-slowdown 15% "$BASE" "$work/slow.csv"
# the same row slower at a lower SM clock (column 4): the verdict stays, the clock is said
edit 'NR>1 && $7=="linear_attn/chunked" && $11==4096 {$17*=1.10; $18*=1.10; $19*=1.10; $20*=1.10; $4=$4*0.85} 1' slowclk.csv
expect 1 "^SLOWER +linear_attn/chunked .*4096.*SM clock [0-9]+ -> [0-9]+ MHz" -- "$BASE" "$work/slowclk.csv"
# newly failing verification
edit 'NR>1 && $7=="long_conv/fft" && $11==1024 {$33="fail:wrong"; $17=$18=$19=$20=""} 1' broken.csv
expect 1 "^BROKEN +long_conv/fft" -- "$BASE" "$work/broken.csv"
# more HBM bytes, same time
edit 'NR>1 && $7=="linear_attn/chunked" && $11==1024 {$28*=1.10} 1' bytes.csv
expect 1 "HBM bytes" -- "$BASE" "$work/bytes.csv"
# missing rows
edit '!(NR>1 && $7=="softmax_attn/flash" && $11==2048)' missing.csv
expect 1 "^MISSING +softmax_attn/flash" -- "$BASE" "$work/missing.csv"
expect 0 "\(allowed\)" -- --allow-missing "$BASE" "$work/missing.csv"
# another device
edit 'NR>1 {$3="NVIDIA H200"} 1' h200.csv
expect 2 "different devices" -- "$BASE" "$work/h200.csv"
expect 0 "-> ok" -- --allow-device-mismatch "$BASE" "$work/h200.csv"
# unusable input: one line, exit 2
expect 2 "cannot read" -- "$BASE" "$work/nope.csv"
: > "$work/empty.csv"
expect 2 "empty" -- "$BASE" "$work/empty.csv"
head -c 2000 "$BASE" > "$work/trunc.csv"
expect 2 "columns" -- "$BASE" "$work/trunc.csv"
edit 'NR==3 {$5=$5","} 1' cols.csv
expect 2 ":3: 35 columns" -- "$BASE" "$work/cols.csv"
edit 'NR==4 {$17="fast"} 1' nonnum.csv
expect 2 "median_ms" -- "$BASE" "$work/nonnum.csv"
edit 'NR==1 {$1="scheme"} 1' header.csv
expect 2 "not a chela-bench" -- "$BASE" "$work/header.csv"
edit 'NR>1 {$7=$7"x"} 1' disjoint.csv
expect 2 "no ok rows" -- "$BASE" "$work/disjoint.csv"
expect 2 "percentage" -- --max-slowdown lots "$BASE" "$BASE"
expect 2 "needs BASE.csv NEW.csv" -- "$BASE"
# very large file: 100k rows parse and compare without trouble
{ cat "$BASE"; for i in $(seq 1 3000); do tail -n +2 "$BASE"; done; } > "$work/large.csv"
expect 0 "-> ok" -- "$BASE" "$work/large.csv"

finish
