#!/usr/bin/env bash
# info_memory.sh REVKIT: `revkit info --memory` on the seed's detector measures one training step per memory mode;
# the reversible modes must hold less activation memory than off (full no more than column) with the same weights.
set -euo pipefail
json=$("$1" info --model yolov5-revcol-tiny --imgsz 64 --batch 2 --memory --json)
field() {  # field MODE NAME: a number from the memory row of MODE
  grep -o "{\"activation_mb\":[0-9.]*,\"memory_mode\":\"$1\",\"params_mb\":[0-9.]*}" <<<"$json" |
    grep -o "\"$2\":[0-9.]*" | cut -d: -f2
}
off=$(field off activation_mb) column=$(field column activation_mb) full=$(field full activation_mb)
echo "activation MB: off $off, column $column, full $full; weights MB $(field off params_mb)"
awk -v o="$off" -v c="$column" -v f="$full" 'BEGIN { exit !(o > 0 && c < o && f <= c) }' ||
  { echo "expected full <= column < off"; exit 1; }
[ "$(field off params_mb)" = "$(field full params_mb)" ] || { echo "weights differ between modes"; exit 1; }
# plain (non-reversible) models get one row
"$1" info --model yolov5n --imgsz 64 --memory | grep -Eq "memory \(cpu, training step, batch 1 at 64x64, plain\): [0-9.]+ MB of weights and buffers, [1-9][0-9.]* MB of activations"
