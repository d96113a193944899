#!/usr/bin/env bash
# Side-by-side benchmark of revkit against the seed's Python RevCol, written to BENCHMARKS.md and
# bench/activation_memory.svg. Every configuration runs in its own process, C++ and Python interleaved so that both
# see the same machine load; each process reports the median of its timed steps, and the whole table is run
# --rounds times, each number being the median over the rounds (a shared machine's speed drifts by 20% and more
# over minutes).
#
#   bash bench/run.sh [--columns "2 4 8 16"] [--curve "4 16"] [--steps 3] [--rounds 3] [--quick]
#
# Needs a built revkit (scripts/build.sh) and, for the Python side, the reference scripts (REVKIT_REFERENCE, default
# ../shared/reference) and a Python torch: the Python side of the wheel that scripts/setup.sh installed, so that both
# sides run the same PyTorch build.
set -euo pipefail
cd "$(dirname "$0")/.."
columns="2 4 8 16"
curve_columns="4 16"
steps=3
rounds=3
interleave_steps=7
model_imgsz=320
model_batch=8
while [ $# -gt 0 ]; do
  case "$1" in
    --columns) columns="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --curve) curve_columns="$2"; shift 2 ;;
    --quick) columns="2 4"; curve_columns="4"; steps=2; rounds=1; interleave_steps=2; model_imgsz=128; model_batch=2; shift ;;
    *) echo "bench/run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
reference="${REVKIT_REFERENCE:-../shared/reference}"
python=/usr/bin/python3
revkit="${REVKIT:-build/bin/revkit}"
# The Python side of the wheel whose LibTorch revkit was built against (scripts/setup.sh installs it).
torch_wheel="${REVKIT_DEPS:-$HOME/.local/share/revkit}/torch-$("$revkit" --version | sed -n 's/^LibTorch //p')"
if [ -d "$torch_wheel/torch" ]; then export PYTHONPATH="$torch_wheel${PYTHONPATH:+:$PYTHONPATH}"; fi
threads=$(nproc)
# The raw JSON lines stay in build/bench-results, so the report and plot can be made again without rerunning.
out=build/bench-results
rm -rf "$out" && mkdir -p "$out"

have_python=0
if [ -f "$reference/bench_reference.py" ] && "$python" -c "import torch" 2>/dev/null; then have_python=1; fi

bench() {  # revkit bench with the common arguments; one JSON line appended to cpp.jsonl
  echo "revkit bench $*" >&2
  "$revkit" bench --steps "$steps" --threads "$threads" --json "$@" >> "$out/cpp.jsonl"
}

for round in $(seq "$rounds"); do
  echo "round $round of $rounds" >&2
  for n in $columns; do
    backbone=(--backbone revcol_tiny --columns "$n" --imgsz 224 --batch 2)
    for mode in off column full auto; do
      bench "${backbone[@]}" --memory-mode "$mode"
      if [ "$have_python" = 1 ] && { [ "$mode" = off ] || [ "$mode" = column ]; }; then
        save=$([ "$mode" = off ] && echo 0 || echo 1)
        echo "python: $n columns, save_memory $save" >&2
        "$python" "$reference/bench_reference.py" --variant tiny --subnets "$n" --batch 2 --size 224 \
          --save-memory "$save" --steps "$steps" --threads "$threads" >> "$out/py.jsonl"
      fi
    done
    # the last column's internals kept: its recompute skipped
    bench "${backbone[@]}" --memory-mode column --keep-columns 1
    # full with alpha 1 (flat memory, small drift), and below a level's working set with chunked recompute
    bench "${backbone[@]}" --memory-mode full --alpha-init 1
    bench "${backbone[@]}" --memory-mode full --alpha-init 1 --recompute-chunks 2
    # inference: forward without autograd
    bench "${backbone[@]}" --memory-mode off --mode infer
    if [ "$have_python" = 1 ]; then
      echo "python: $n columns, inference" >&2
      "$python" bench/reference_infer.py "$reference" --subnets "$n" --batch 2 --size 224 --steps "$steps" \
        --threads "$threads" >> "$out/py_infer.jsonl"
    fi
  done

  # The time/memory curve auto mode walks at 4 and 16 columns: up to 10 plans on its frontier, each chosen by auto mode
  # from that plan's predicted memory as the budget.
  for n in $curve_columns; do
    backbone=(--backbone revcol_tiny --columns "$n" --imgsz 224 --batch 2)
    if [ ! -f "$out/plans_$n.jsonl" ]; then
      "$revkit" bench "${backbone[@]}" --memory-mode auto --plans --threads "$threads" > "$out/plans_$n.jsonl"
    fi
    for budget in $("$python" bench/frontier.py "$out/plans_$n.jsonl" 10); do
      bench "${backbone[@]}" --memory-mode auto --memory-budget "$budget"
    done
  done

  # A whole detector: the seed's model, training steps per memory mode.
  for mode in off column full auto; do
    bench --model yolov5-revcol-tiny --imgsz "$model_imgsz" --batch "$model_batch" --memory-mode "$mode"
  done
done

# The ratios between modes, each run in one process with the modes' steps in turn (bench --interleave): off, column
# and full; off against column with the last column kept; column against full at alpha 1.
for n in $columns; do
  backbone=(--backbone revcol_tiny --columns "$n" --imgsz 224 --batch 2 --steps "$interleave_steps" --threads "$threads" --json)
  echo "revkit bench: $n columns, modes side by side" >&2
  "$revkit" bench "${backbone[@]}" --interleave off,column,full >> "$out/interleaved.jsonl"
  "$revkit" bench "${backbone[@]}" --interleave off,column --keep-columns 1 >> "$out/interleaved.jsonl"
  "$revkit" bench "${backbone[@]}" --interleave column,full --alpha-init 1 >> "$out/interleaved.jsonl"
done

# Float32 gradient error of full and auto against off, per column count and alpha (RevCol-T shapes, 64x64 input).
for alpha in 0.5 1 2; do
  for n in 4 8 16; do
    for mode in full auto; do
      [ "$mode" = auto ] && [ "$alpha" != 0.5 ] && continue
      echo "check: $n columns, alpha $alpha, $mode" >&2
      # auto under a budget below anything: its plan with the least memory, stored columns as the drift allows
      budget=(); [ "$mode" = auto ] && budget=(--memory-budget 1)
      "$revkit" check --backbone revcol_tiny --columns "$n" --alpha-init "$alpha" --dtype float32 --imgsz 64 \
        --batch 1 --drop-path 0 --memory-mode "$mode" "${budget[@]}" > "$out/check_${mode}_${n}_${alpha}.txt" || true
    done
  done
done

# Keep the sections this script does not write, in their order: every marked one (bench/train_peers.py's,
# process_pairs.sh's, channels_last.sh's, train.sh's, kept_internals.sh's, auto_curve.sh's, training_gap.py's
# summary and the earlier LibTorch's numbers).
kept=$'\n'$(awk '/^<!-- [a-z_]+:begin -->/ { on = 1 } on { print } /^<!-- [a-z_]+:end -->/ { if (on) print ""; on = 0 }' \
  BENCHMARKS.md 2>/dev/null || true)$'\n'
REVKIT="$revkit" "$python" bench/report.py "$out" "$steps" "$rounds" "$threads" "$have_python" "$model_imgsz" "$model_batch" \
  bench/activation_memory.svg > BENCHMARKS.md
printf '%s' "$kept" >> BENCHMARKS.md
echo "wrote BENCHMARKS.md and bench/activation_memory.svg" >&2
