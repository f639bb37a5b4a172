#!/usr/bin/env bash
# run.sh [SECONDS]: build the libFuzzer targets with clang (+ASan/UBSan) and run
# each from its committed seed corpus for a bounded time (default 60 s).  A crash
# leaves its input in tests/fuzz/crashes/: fix the bug, then add the input to the
# target's corpus so it is replayed from then on.
set -eu
cd "$(dirname "$0")/../.."
secs=${1:-60}
out=${FUZZ_BUILD:-build-fuzz}
mkdir -p "$out" tests/fuzz/crashes
# ops.c's table names every CPU reference, so take them all by pattern: a new
# reference can never be left out of this link line again.
common="harness/seqparse.c harness/cli.c harness/csv.c harness/ops.c harness/core/shape.c harness/core/error.c harness/core/settings.c
        $(ls harness/ref_*.c | tr '\n' ' ')"
for t in seq cli csv; do
    clang -std=c11 -D_POSIX_C_SOURCE=200809L -g -O1 -fsanitize=fuzzer,address,undefined \
        -fno-sanitize-recover=undefined -Iharness -Iharness/core tests/fuzz/fuzz_$t.c $common -lm -o "$out/fuzz_$t"
done
for t in seq cli csv; do
    work=$(mktemp -d)
    echo "fuzz_$t: ${secs}s from tests/fuzz/corpus/$t"
    "$out/fuzz_$t" -max_total_time="$secs" -max_len=1024 -artifact_prefix=tests/fuzz/crashes/ \
        -print_final_stats=1 "$work" tests/fuzz/corpus/$t 2>&1 | grep -E "^(stat::number_of_executed_units|Done|==.*ERROR)" || true
    rm -rf "$work"
    if ls tests/fuzz/crashes/ 2>/dev/null | grep -q .; then echo "fuzz_$t: crash found"; exit 1; fi
done
echo "fuzzing: no crashes"
