# cli_lib.sh: sourced by the shell tests: pass/fail counters, a scratch folder
# removed on exit, and the closing "N passed, M failed" line.
B=${CHELA_BENCH:?set CHELA_BENCH to the chela-bench binary}
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
finish() {
    echo "$pass passed, $fail failed"
    [ "$fail" -eq 0 ]
}
