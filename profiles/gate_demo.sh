#!/usr/bin/env bash
# gate_demo.sh OUTDIR BIN: the regression gate on a GPU: two back-to-back runs of
# one build must compare clean; a deliberately slowed chunked kernel (segment
# length forced to 128 tokens, so the state pass and scan dominate) must be flagged.
set -u
OUT=$1
BIN=$2
args="--seq 1k..64k --ops linear_attn,long_conv"
$BIN $args -o "$OUT/gate_a.csv" 2> "$OUT/gate_a.log"
$BIN $args -o "$OUT/gate_b.csv" 2> "$OUT/gate_b.log"
CHELA_LA_SEG=128 $BIN $args -o "$OUT/gate_slow.csv" 2> "$OUT/gate_slow.log"
echo "== compare a b (same build, back to back)"
$BIN compare "$OUT/gate_a.csv" "$OUT/gate_b.csv"; echo "rc=$?"
echo "== compare a slow (CHELA_LA_SEG=128)"
$BIN compare "$OUT/gate_a.csv" "$OUT/gate_slow.csv"; echo "rc=$?"
