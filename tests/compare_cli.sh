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
# unusable input is said in one line: exit 2, the file, the line, the problem
expect1() { # like expect, and the output is that one line
    local out
    out=$("$B" compare "${@:4}" 2>&1)
    if [ "$(printf '%s\n' "$out" | wc -l)" -ne 1 ]; then
        fail=$((fail + 1))
        echo "FAIL: compare ${*:4} said more than one line"
        printf '%s\n' "$out" | head -3
    else
        expect "$@"
    fi
}
# an ok row must carry a usable time (median 17, p10 18, p90 19)
edit 'NR==3 {$17=""} 1' med_empty.csv
expect1 2 "med_empty.csv:3: status ok but median_ms is empty" -- "$BASE" "$work/med_empty.csv"
expect1 2 "med_empty.csv:3: status ok but median_ms" -- "$work/med_empty.csv" "$BASE"
edit 'NR==4 {$17=-$17} 1' med_neg.csv
expect1 2 "med_neg.csv:4: status ok but median_ms is -[0-9.]+, not a positive time" -- "$BASE" "$work/med_neg.csv"
edit 'NR==5 {$17=0} 1' med_zero.csv
expect1 2 "med_zero.csv:5: status ok but median_ms is 0" -- "$BASE" "$work/med_zero.csv"
edit 'NR==6 {$17="inf"} 1' med_inf.csv
expect1 2 "med_inf.csv:6: status ok but median_ms is inf" -- "$BASE" "$work/med_inf.csv"
edit 'NR==7 {$18=-1} 1' p10_neg.csv
expect1 2 "p10_neg.csv:7: status ok but p10_ms is -1" -- "$BASE" "$work/p10_neg.csv"
edit 'NR==8 {$19="-inf"} 1' p90_inf.csv
expect1 2 "p90_inf.csv:8: status ok but p90_ms is -inf" -- "$BASE" "$work/p90_inf.csv"
# a row that is not ok may have no time at all
edit 'NR==9 {$33="skip:oom"; $17=$18=$19=""} 1' skip_empty.csv
expect 1 "BROKEN" -- "$BASE" "$work/skip_empty.csv"
# a directory is said to be one (fopen() opens it; only the read fails)
mkdir "$work/dir.csv"
expect1 2 "dir.csv: is a directory" -- "$BASE" "$work/dir.csv"
expect1 2 "dir.csv: is a directory" -- "$work/dir.csv" "$BASE"
# a wrong column count is the real count, however many
edit 'NR==3 {for (i = 35; i <= 100; i++) $i = "x"} 1' cols100.csv
expect1 2 ":3: 100 columns, expected 34" -- "$BASE" "$work/cols100.csv"

# columns are read by the header's names: any order, unknown extra columns read past
awk -F, '{for (i = NF; i >= 1; i--) printf "%s%s", $i, (i > 1 ? "," : "\n")}' "$BASE" > "$work/reversed.csv"
expect 0 "0 SLOWER, 0 BROKEN, 0 MISSING -> ok" -- "$BASE" "$work/reversed.csv"
expect 0 "0 SLOWER, 0 BROKEN, 0 MISSING -> ok" -- "$work/reversed.csv" "$BASE"
edit 'NR==1 {$0 = $0 ",future_a,future_b"} NR>1 {$0 = $0 ",0,x"} 1' extra.csv
expect 0 "0 SLOWER, 0 BROKEN, 0 MISSING -> ok" -- "$BASE" "$work/extra.csv"
# schema 2 against schema 1: a schema-1 row reads as causal, fwd, no settings; a changed
# config is said beside the verdict; rows of other causality, pass or settings do not match
edit 'NR==1 {$0 = $0 ",causal,pass,config,peak_mem_bytes,build"} NR>1 {$1 = 2; $0 = $0 ",1,fwd,v6 seg=4096,1e9,sm 90"} 1' s2.csv
expect 0 "0 SLOWER, 0 BROKEN, 0 MISSING -> ok" -- "$BASE" "$work/s2.csv"
awk -F, -v OFS=, 'NR>1 && $7=="linear_attn/chunked" && $11==4096 {$37="v3 seg=4096"; $17*=1.2; $18*=1.2; $19*=1.2; $20*=1.2} 1' "$work/s2.csv" > "$work/s2cfg.csv"
expect 1 "SLOWER .*config v6 seg=4096 -> v3 seg=4096" -- "$work/s2.csv" "$work/s2cfg.csv"
awk -F, -v OFS=, 'NR>1 {$35="0"} 1' "$work/s2.csv" > "$work/s2nc.csv"
expect 2 "no ok rows" -- "$work/s2.csv" "$work/s2nc.csv"
awk -F, -v OFS=, 'NR>1 {$37="v6 seg=4096 (set la_seg=4096)"} 1' "$work/s2.csv" > "$work/s2set.csv"
expect 2 "no ok rows" -- "$work/s2.csv" "$work/s2set.csv"
# the reordered file still judges: its one slow row is found by name
awk -F, -v OFS=, 'NR>1 && $7=="linear_attn/chunked" && $11==4096 {$17*=1.10; $18*=1.10; $19*=1.10; $20*=1.10} 1' \
    "$BASE" | awk -F, '{for (i = NF; i >= 1; i--) printf "%s%s", $i, (i > 1 ? "," : "\n")}' > "$work/rev_slow.csv"
expect 1 "^SLOWER +linear_attn/chunked .*4096" -- "$BASE" "$work/rev_slow.csv"
# a header without a column this build needs is refused, naming it
awk -F, '{for (i = 1; i <= NF; i++) if (i != 17) printf "%s%s", $i, (i < NF ? "," : "\n")}' "$BASE" > "$work/no_median.csv"
expect1 2 "no_median.csv: not a chela-bench results file \(header has no 'median_ms' column\)" -- "$BASE" "$work/no_median.csv"
awk -F, '{for (i = 1; i <= NF; i++) if (i != 7) printf "%s%s", $i, (i < NF ? "," : "\n")}' "$BASE" > "$work/no_variant.csv"
expect1 2 "header has no 'variant' column" -- "$work/no_variant.csv" "$BASE"
edit 'NR==1 {$20="seq"} 1' twice.csv
expect1 2 "header names column 'seq' twice" -- "$BASE" "$work/twice.csv"
# every row's schema is checked, wherever the column is
awk -F, -v OFS=, 'NR==5 {$NF=3} 1' "$work/reversed.csv" > "$work/rev_schema3.csv"
expect1 2 "rev_schema3.csv:5: schema '3', this build reads schemas 1 to 2" -- "$BASE" "$work/rev_schema3.csv"
# concatenated files repeat the header mid-file, even in another order
{ cat "$BASE"; cat "$work/rev_slow.csv"; } > "$work/concat.csv"
expect 0 "concat.csv: 35 rows repeating the key of an earlier row ignored \(the first wins\)" -- "$BASE" "$work/concat.csv"
expect 0 "32 compared: 32 SAME.*-> ok" -- "$BASE" "$work/concat.csv"
{ cat "$BASE"; head -1 "$work/no_median.csv"; } > "$work/concat_bad.csv"
expect1 2 "concat_bad.csv:37: header has no 'median_ms' column" -- "$BASE" "$work/concat_bad.csv"
# duplicate keys: the first row wins, stderr says how many were ignored
{ cat "$BASE"; tail -n +2 "$work/slow.csv"; } > "$work/dup_base.csv"
expect 0 "dup_base.csv: 35 rows repeating the key" -- "$work/dup_base.csv" "$BASE"
expect 0 "^32 compared: 32 SAME" -- "$work/dup_base.csv" "$BASE"

# scale: rows match by a hash of the key, not row against row (which took a
# minute and a half at this size): 100k rows each, in reverse order, well
# within a generous limit (tests/bench_compare_scale.sh times a million)
awk -F, -v OFS=, 'NR==1 {print; next} NR==2 {for (i = 1; i <= 100000; i++) {$11 = i; print}}' "$BASE" > "$work/big_base.csv"
{ head -1 "$work/big_base.csv"; tail -n +2 "$work/big_base.csv" | tac; } > "$work/big_new.csv"
out=$(timeout 20 "$B" compare "$work/big_base.csv" "$work/big_new.csv" 2>&1 | tail -1)
if [ "$out" = "100000 compared: 100000 SAME, 0 FASTER, 0 SLOWER, 0 BROKEN, 0 MISSING -> ok" ]; then ok; else
    bad "100k-row compare did not finish within 20 s or said: $out"; fi

# very large file: 100k rows parse and compare without trouble
{ cat "$BASE"; for i in $(seq 1 3000); do tail -n +2 "$BASE"; done; } > "$work/large.csv"
expect 0 "-> ok" -- "$BASE" "$work/large.csv"

# --- show: columns by header name, whatever their order --------------------------
out=$("$B" show "$BASE" --cols variant,seq,median_ms --where variant=linear_attn/chunked 2>&1); rc=$?
rows=$(printf '%s\n' "$out" | tail -n +2 | wc -l)
want=$(awk -F, '$7 == "linear_attn/chunked"' "$BASE" | wc -l)
[ $rc -eq 0 ] && [ "$rows" -eq "$want" ] && printf '%s\n' "$out" | head -1 | grep -q '^variant  *seq  *median_ms$' &&
    pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: show --cols/--where: rc=$rc, $rows rows (want $want)"; }
rev=$("$B" show "$work/reversed.csv" --cols variant,seq,median_ms --where variant=linear_attn/chunked 2>&1)
[ "$rev" = "$out" ] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: show differs on a reordered file"; }
"$B" show "$BASE" --where 'variant~naive' --cols variant | tail -n +2 | grep -qv naive &&
    { fail=$((fail + 1)); echo "FAIL: show --where col~text"; } || pass=$((pass + 1))
err=$("$B" show "$BASE" --cols variant,nonesuch 2>&1 >/dev/null); rc=$?
[ $rc -eq 2 ] && [ "$(printf '%s\n' "$err" | grep -c .)" -eq 1 ] && [[ $err == *nonesuch* ]] &&
    pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: show unknown column: rc=$rc $err"; }

finish
