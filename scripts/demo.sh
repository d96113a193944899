#!/usr/bin/env bash
# README command one: install what is missing, build, then the main job. Until training lands, the main job
# proves RevCol against the seed's Python (the bundled fixtures) in every memory mode, checks the memory modes
# of RevCol-T against plain autograd, builds the seed's detector, and benchmarks the memory modes side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
revkit=build/bin/revkit
echo
echo "== RevCol against the seed's Python: outputs and gradients, every memory mode"
"$revkit" check --fixture tests/fixtures/revcol_mini_f64.safetensors
"$revkit" check --fixture tests/fixtures/revcol_small_f32.safetensors
echo
echo "== RevCol-T (4 columns), reversible modes against plain autograd, float32, with drop path"
"$revkit" check --backbone revcol_tiny --imgsz 64 --batch 2 --dtype float32 --drop-path 0.1
echo
echo "== The seed's detector: YOLOv5 head on RevCol-T, built from its config"
"$revkit" info --model yolov5-revcol-tiny --imgsz 320
echo
echo "== Training step, RevCol-T, batch 2 at 224x224: time and activation memory per memory mode"
for mode in off column full; do
  "$revkit" bench --backbone revcol_tiny --imgsz 224 --batch 2 --memory-mode "$mode" --steps 3 --threads "$(nproc)"
done
