#!/usr/bin/env bash
# bench_compare_scale.sh [ROWS]: how long `chela-bench compare` takes, and how
# much memory, on two large results files (default 1,000,000 rows each).  Not a
# ctest test: a developer runs it after touching compare or the CSV reader.
#
# The files are made with awk from one row of tests/fixtures/compare_base.csv,
# its variant, batch and seq varied so every key is unique: 10 variants x 100
# batches x ROWS/1000 seqs.  NEW holds the same keys in reverse order (no help
# from the order) and every 100th row 10% slower, so the table has SLOWER rows
# to sort and the exit status is 1.
#
#   CHELA_BENCH  the binary (default: build/chela-bench of this checkout)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
B=${CHELA_BENCH:-$here/../build/chela-bench}
rows=${1:-1000000}
[ -x "$B" ] || { echo "bench_compare_scale: no binary at $B (build first, or set CHELA_BENCH)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# gen ORDER SLOW: ORDER up or down; every 100th row slower by SLOW
gen() {
    awk -F, -v OFS=, -v n="$rows" -v order="$1" -v slow="$2" '
        NR == 1 { print; next }
        NR == 2 {
            for (j = 0; j < n; j++) {
                i = order == "up" ? j : n - 1 - j
                $7 = "linear_attn/chunked_v" (i % 10)
                $10 = int(i / 10) % 100 + 1
                $11 = int(i / 1000) + 1
                f = (i % 100 == 0) ? slow : 1
                $17 = 0.202976 * f; $18 = 0.197248 * f; $19 = 0.205952 * f; $20 = 0.194112 * f
                print
            }
        }' "$here/fixtures/compare_base.csv"
}
echo "bench_compare_scale: generating two files of $rows rows"
gen up 1 > "$work/base.csv"
gen down 1.10 > "$work/new.csv"
ls -l "$work/base.csv" "$work/new.csv" | awk '{printf "  %s: %.0f MB\n", $NF, $5 / 1e6}'

echo "bench_compare_scale: $B compare base.csv new.csv"
rc=0
if [ -x /usr/bin/time ]; then
    /usr/bin/time -v "$B" compare "$work/base.csv" "$work/new.csv" >"$work/out" 2>"$work/err" || rc=$?
    secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, t, ":"); s = 0; for (k = 1; k <= n; k++) s = s * 60 + t[k]; print s}' "$work/err")
    rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$work/err")
    echo "  wall: ${secs} s   max RSS: ${rss} MiB   exit: $rc"
    # what the process holds before compare reads a byte (the CUDA libraries it links)
    /usr/bin/time -v "$B" --version >/dev/null 2>"$work/err0" || true
    echo "  max RSS of 'chela-bench --version' alone: $(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$work/err0") MiB"
else
    # no GNU time: wall clock only
    start=$(date +%s.%N)
    "$B" compare "$work/base.csv" "$work/new.csv" >"$work/out" 2>"$work/err" || rc=$?
    end=$(date +%s.%N)
    echo "  wall: $(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.2f", b - a}') s   max RSS: (needs /usr/bin/time)   exit: $rc"
fi
echo "  table: $(($(wc -l <"$work/out") - 2)) rows; $(tail -1 "$work/out")"
grep -v -E '^\s' "$work/err" | grep '^chela-bench' || true
[ "$rc" -le 1 ]
