#!/usr/bin/env bash
# Side-by-side benchmark of revkit against the seed's Python RevCol (bench_reference.py), written to
# BENCHMARKS.md. Every configuration runs in its own process, C++ and Python interleaved so that both see the
# same machine load; each process reports the median of its timed steps.
#
#   bash bench/run.sh [--columns "2 4 8 16"] [--steps 5] [--quick]
#
# Needs a built revkit (scripts/build.sh) and, for the Python side, Debian's python3-torch and the reference
# scripts (REVKIT_REFERENCE, default ../shared/reference).
set -euo pipefail
cd "$(dirname "$0")/.."
columns="2 4 8 16"
steps=5
while [ $# -gt 0 ]; do
  case "$1" in
    --columns) columns="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --quick) columns="2 4"; steps=3; shift ;;
    *) echo "bench/run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
reference="${REVKIT_REFERENCE:-../shared/reference}"
python=/usr/bin/python3
revkit=build/bin/revkit
threads=$(nproc)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

have_python=0
if [ -f "$reference/bench_reference.py" ] && "$python" -c "import torch" 2>/dev/null; then have_python=1; fi

for n in $columns; do
  for mode in off column full; do
    echo "revkit: $n columns, $mode" >&2
    "$revkit" bench --backbone revcol_tiny --columns "$n" --imgsz 224 --batch 2 --memory-mode "$mode" \
      --steps "$steps" --threads "$threads" --json >> "$out/cpp.jsonl"
    if [ "$have_python" = 1 ] && [ "$mode" != full ]; then
      save=$([ "$mode" = off ] && echo 0 || echo 1)
      echo "python: $n columns, save_memory $save" >&2
      "$python" "$reference/bench_reference.py" --variant tiny --subnets "$n" --batch 2 --size 224 \
        --save-memory "$save" --steps "$steps" --threads "$threads" >> "$out/py.jsonl"
    fi
  done
done

# Float32 gradient error of full mode against off, per column count and alpha (RevCol-T shapes, 64x64 input).
for alpha in 0.5 1 2; do
  for n in 4 8 16; do
    echo "drift: $n columns, alpha $alpha" >&2
    "$revkit" check --backbone revcol_tiny --columns "$n" --alpha-init "$alpha" --dtype float32 --imgsz 64 \
      --batch 1 --drop-path 0 --memory-mode full > "$out/check_${n}_${alpha}.txt" || true
  done
done

# Keep the training section that bench/train.sh wrote.
train_section=$(sed -n '/<!-- train:begin -->/,/<!-- train:end -->/p' BENCHMARKS.md 2>/dev/null || true)
"$python" bench/report.py "$out" "$steps" "$threads" "$have_python" > BENCHMARKS.md
if [ -n "$train_section" ]; then printf '\n%s\n' "$train_section" >> BENCHMARKS.md; fi
echo "wrote BENCHMARKS.md" >&2
