#!/usr/bin/env bash
# bench_interleave.sh REVKIT: `revkit bench --interleave` times memory modes in turn in one process; each mode's row
# comes in the order asked, the first mode's ratio to itself is 1, and the reversible modes hold less activation
# memory than off (full no more than column), column with its matrix products kept more than column, and column
# with its top level kept less than off. (At this size the top level's weights outweigh its activations: its
# recompute's transient parameter gradients make column's peak the higher one.) A forward alone is timed in the same
# rounds.
set -euo pipefail
json=$("$1" bench --backbone revcol_tiny --columns 3 --imgsz 64 --batch 2 --steps 2 --threads 1 \
  --interleave off,column,full,column+matmuls,column+levels=1 --json)
rows=$(grep -o '{"act_mb":[0-9.]*,"keep_levels":[0-9]*,"keep_matmuls":[0-9]*,"label":"[a-z0-9+=]*","memory_mode":"[a-z]*","ratio":[0-9.]*,"step_ms":[0-9.]*}' <<<"$json")
[ "$(grep -o '"label":"[a-z0-9+=]*"' <<<"$rows" | cut -d'"' -f4 | tr '\n' ' ')" = \
  "off column full column+matmuls column+levels=1 " ] ||
  { echo "expected rows off, column, full, column+matmuls, column+levels=1: $json"; exit 1; }
field() {  # field LABEL NAME
  grep "\"label\":\"$1\"" <<<"$rows" | grep -o "\"$2\":[0-9.]*" | cut -d: -f2
}
echo "off $(field off step_ms) ms, column x$(field column ratio), full x$(field full ratio), column+matmuls" \
  "x$(field column+matmuls ratio), column+levels=1 x$(field column+levels=1 ratio); activation MB: off" \
  "$(field off act_mb), column $(field column act_mb), full $(field full act_mb), column+matmuls" \
  "$(field column+matmuls act_mb), column+levels=1 $(field column+levels=1 act_mb)"
[ "$(field off ratio)" = "1.0" ] || { echo "off's ratio to itself is $(field off ratio)"; exit 1; }
awk -v o="$(field off act_mb)" -v c="$(field column act_mb)" -v f="$(field full act_mb)" \
  -v m="$(field column+matmuls act_mb)" -v l="$(field column+levels=1 act_mb)" -v s="$(field column step_ms)" \
  -v r="$(field column ratio)" 'BEGIN { exit !(c < o && f <= c && c < m && l < o && s > 0 && r > 0) }' ||
  { echo "expected full <= column < off, column < column+matmuls and column+levels=1 < off in activation memory," \
      "and positive times"; exit 1; }
[ "$(field column+matmuls keep_matmuls)" = "3" ] && [ "$(field column keep_matmuls)" = "0" ] ||
  { echo "expected column+matmuls to keep the products of all 3 columns, column of none: $json"; exit 1; }
[ "$(field column+levels=1 keep_levels)" = "1" ] && [ "$(field column keep_levels)" = "0" ] ||
  { echo "expected column+levels=1 to keep one level, column none: $json"; exit 1; }
grep -q '"columns":3,' <<<"$json" || { echo "expected 3 columns: $json"; exit 1; }
forward=$(grep -o '"forward_ratio":[0-9.]*' <<<"$json" | cut -d: -f2)
awk -v f="$forward" 'BEGIN { exit !(f > 0) }' ||
  { echo "expected a forward alone timed beside off's step, got forward_ratio '$forward': $json"; exit 1; }
