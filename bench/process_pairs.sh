#!/usr/bin/env bash
# Whole revkit processes side by side, two settings of the same build alternating in processes of their own for
# several pairs: `revkit train` on the first 32 images of coco128 (the seed's detector at 320, batch 8, one epoch).
# Reports each side's median step and peak RSS of the process, the medians of the per-pair ratios, and writes the
# table into BENCHMARKS.md between the comparison's markers.
#   allocator: REVKIT_CPU_CACHE=0 (large blocks from malloc, as LibTorch's own allocator) against revkit's CPU
#              allocator (core/cpu_allocator.h), in full, column and off mode;
#   cuda:      LibTorch's CUDA half preloaded (LD_PRELOAD=libtorch_cuda.so, as when revkit linked it) against
#              loading it only for CUDA (core/cuda_runtime.h), in full mode, and the start-up of `revkit info`;
#   python:    the seed's Python RevCol-T (bench_reference.py, on the Python side of the wheel revkit was built
#              against) against `revkit bench`, a training step at 224, batch 2, in off and column mode at --columns,
#              the side that starts alternating from pair to pair (bench/run.sh times every mode, but in 3 rounds).
#   fused:     REVKIT_FUSED_LINEAR=0 (at::linear, then at::gelu) against oneDNN's products with the bias, and
#              the GELU without autograd, fused (core/fused_linear.h): RevCol-T at 224, batch 2, at --columns: the
#              inference step, and off and column training steps side by side in one process (--interleave
#              off,column), with the least a step that recomputes every cell once can cost (1 + the forward
#              without autograd / off).
#
#   bash bench/process_pairs.sh [--pairs N] [--compare "allocator cuda python fused"] [--columns "2 4"]
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=3
compare="allocator cuda"
columns="2 4"
while [ $# -gt 0 ]; do
  case "$1" in
    --pairs) pairs="$2"; shift 2 ;;
    --compare) compare="$2"; shift 2 ;;
    --columns) columns="$2"; shift 2 ;;
    *) echo "bench/process_pairs.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
revkit=$PWD/build/bin/revkit
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
images=$PWD/assets/coco128/images/train2017
ls "$images" | head -32 | sed "s|^|$images/|" > "$work/train.txt"
{ echo "path: ."; echo "train: train.txt"; echo "val: train.txt"; sed -n '/^names:/,$p' assets/coco128/coco128.yaml; } \
  > "$work/data.yaml"
train_args=(--model yolov5-revcol-tiny --imgsz 320 --batch 8 --epochs 1 --workers 0 --noval --seed 0)
info_args=(info --model yolov5n --imgsz 64)
# One training run under the environment assignments given: "<s per iteration> <peak RSS MB of the process>".
train() {
  local mode=$1
  shift
  env "$@" OMP_NUM_THREADS=2 /usr/bin/time -f "%M" -o "$work/rss" "$revkit" train "${train_args[@]}" \
    --data "$work/data.yaml" --memory-mode "$mode" --project "$work/runs" --name run --exist-ok > "$work/log" 2>&1
  echo "$(grep -o '[0-9.]* s per iteration (median)' "$work/log" | cut -d' ' -f1) $(( $(cat "$work/rss") / 1024 ))"
}
# One short command: "<wall s> <peak RSS MB>".
startup() {
  env "$@" OMP_NUM_THREADS=2 /usr/bin/time -f "%e %M" -o "$work/rss" "$revkit" "${info_args[@]}" > /dev/null 2>&1
  awk '{ printf "%s %d\n", $1, $2 / 1024 }' "$work/rss"
}
# A table row from "a1 a2 b1 b2" lines: label, then medians of a1, b1, b1/a1, a2, b2, b2/a2 (times with $3 decimals,
# default 2).
row() {
  python3 -c "
import statistics, sys
p = [tuple(map(float, l.split())) for l in sys.argv[2].splitlines() if l.strip()]
med, d = statistics.median, int(sys.argv[3])
print(f'| {sys.argv[1]} | {med(r[0] for r in p):.{d}f} | {med(r[2] for r in p):.{d}f} | {med(r[2] / r[0] for r in p):.2f} '
      f'| {med(r[1] for r in p):.0f} | {med(r[3] for r in p):.0f} | {med(r[3] / r[1] for r in p):.2f} |')
" "$1" "$2" "${3:-2}"
}
header="$(date -u +%Y-%m-%d), $(nproc) cores, $("$revkit" --version | sed -n 2p)"

if [[ " $compare " == *" allocator "* ]]; then
  rows=""
  for m in full column off; do
    samples=""
    for _ in $(seq "$pairs"); do samples+="$(train "$m" REVKIT_CPU_CACHE=0) $(train "$m" REVKIT_CPU_CACHE=1)"$'\n'; done
    rows+="$(row "$m" "$samples")"$'\n'
  done
  echo "$rows"
  python3 bench/put_section.py allocator --before layout <<MD
<!-- allocator:begin -->
## revkit's CPU allocator against malloc

\`bash bench/process_pairs.sh --compare allocator\` on $header: \`revkit train ${train_args[*]} --data DATA --memory-mode MODE\`
on the first 32 images of coco128, with \`REVKIT_CPU_CACHE=0\` (large blocks from glibc's malloc, as LibTorch's
own allocator) and without (revkit's allocator, \`core/cpu_allocator.h\`), $pairs pairs of processes, the two
sides alternating; medians, and the medians of the per-pair ratios. Peak RSS is the whole process's.

| memory mode | malloc s / iteration | revkit s / iteration | ratio | malloc peak RSS MB | revkit peak RSS MB | ratio |
|---|---|---|---|---|---|---|
$rows
<!-- allocator:end -->
MD
fi

if [[ " $compare " == *" cuda "* ]]; then
  libtorch_cuda=$(ldd build/core/librevkit_cuda.so | awk '/libtorch_cuda\.so/ { print $3 }')
  [ -n "$libtorch_cuda" ] || { echo "bench/process_pairs.sh: this build has no CUDA module" >&2; exit 2; }
  samples="" starts=""
  for _ in $(seq "$pairs"); do
    samples+="$(train full LD_PRELOAD="$libtorch_cuda") $(train full LD_PRELOAD=)"$'\n'
    starts+="$(startup LD_PRELOAD="$libtorch_cuda") $(startup LD_PRELOAD=)"$'\n'
  done
  rows="$(row "\`train\`, full mode (s / iteration)" "$samples")"$'\n'"$(row "\`${info_args[*]}\` (wall s)" "$starts")"
  echo "$rows"
  python3 bench/put_section.py cuda_on_demand --before layout <<MD
<!-- cuda_on_demand:begin -->
## LibTorch's CUDA half on demand

\`bash bench/process_pairs.sh --compare cuda\` on $header, no GPU: \`revkit train ${train_args[*]} --data DATA --memory-mode full\`
on the first 32 images of coco128, and \`revkit ${info_args[*]}\` for the start-up, with libtorch_cuda (and the
cuBLAS, cuDNN and NCCL it links) preloaded as when revkit linked it, and loaded only for CUDA
(\`core/cuda_runtime.h\`), $pairs pairs of processes, the two sides alternating; medians, and the medians of the
per-pair ratios. Peak RSS is the whole process's.

| run | preloaded | on demand | ratio | preloaded peak RSS MB | on demand peak RSS MB | ratio |
|---|---|---|---|---|---|---|
$rows
<!-- cuda_on_demand:end -->
MD
fi

if [[ " $compare " == *" python "* ]]; then
  reference="${REVKIT_REFERENCE:-../shared/reference}"
  torch_wheel="${REVKIT_DEPS:-$HOME/.local/share/revkit}/torch-$("$revkit" --version | sed -n 's/^LibTorch //p')"
  if [ ! -f "$reference/bench_reference.py" ] || [ ! -d "$torch_wheel/torch" ]; then
    echo "bench/process_pairs.sh: --compare python needs $reference/bench_reference.py and $torch_wheel" >&2
    exit 2
  fi
  # A training step, each side: "<step ms> <peak RSS growth MB>" (the growth as bench_reference.py measures it).
  cpp_step() {
    "$revkit" bench --backbone revcol_tiny --columns "$1" --imgsz 224 --batch 2 --memory-mode "$2" --steps 3 \
      --threads 2 --json 2>/dev/null |
      python3 -c "import json, sys; r = json.load(sys.stdin); print(r['step_ms'], r['rss_act_mb'])"
  }
  python_step() {
    PYTHONPATH="$torch_wheel" /usr/bin/python3 "$reference/bench_reference.py" --variant tiny --subnets "$1" --batch 2 \
      --size 224 --save-memory "$([ "$2" = off ] && echo 0 || echo 1)" --steps 3 --threads 2 2>/dev/null |
      python3 -c "import json, sys; r = json.load(sys.stdin); print(r['step_ms'], r['act_mb'])"
  }
  rows=""
  for n in $columns; do
    for m in off column; do
      samples=""
      for i in $(seq "$pairs"); do
        if [ $((i % 2)) = 1 ]; then py=$(python_step "$n" "$m"); cpp=$(cpp_step "$n" "$m")
        else cpp=$(cpp_step "$n" "$m"); py=$(python_step "$n" "$m"); fi
        samples+="$py $cpp"$'\n'
      done
      rows+="$(row "$n | $m" "$samples" 0)"$'\n'
    done
  done
  echo "$rows"
  python3 bench/put_section.py python_pairs --before peers <<MD
<!-- python_pairs:begin -->
## revkit against the seed's Python, in pairs of processes

\`bash bench/process_pairs.sh --compare python --pairs $pairs --columns "$columns"\` on $header: a RevCol-T training
step at 224, batch 2, 2 threads (\`revkit bench --memory-mode MODE --steps 3\` against the seed's
\`bench_reference.py --save-memory 0|1 --steps 3\` on the same PyTorch), $pairs pairs of processes, the side that
starts alternating; medians, and the medians of the per-pair ratios. Memory is the peak RSS growth of the step.

| columns | mode | Python ms | revkit ms | ratio | Python MB | revkit MB | ratio |
|---|---|---|---|---|---|---|---|
$rows
<!-- python_pairs:end -->
MD
fi

if [[ " $compare " == *" fused "* ]]; then
  # One side's processes: "<inference ms> <off ms> <column ms> <column / off> <bound>".
  fused_sample() {
    local n=$1
    shift
    local shape=(--backbone revcol_tiny --columns "$n" --imgsz 224 --batch 2 --threads 2 --json)
    {
      env "$@" "$revkit" bench "${shape[@]}" --mode infer --steps 7 2>/dev/null
      env "$@" "$revkit" bench "${shape[@]}" --interleave off,column --steps 7 2>/dev/null
    } | python3 -c "
import json, sys
infer, side = (json.loads(l) for l in sys.stdin)
off, column = side['interleaved']
print(infer['step_ms'], off['step_ms'], column['step_ms'], column['ratio'], 1 + side['forward_ratio'])"
  }
  rows=""
  for n in $columns; do
    samples=""
    for i in $(seq "$pairs"); do
      if [ $((i % 2)) = 1 ]; then a=$(fused_sample "$n" REVKIT_FUSED_LINEAR=0); b=$(fused_sample "$n" REVKIT_FUSED_LINEAR=1)
      else b=$(fused_sample "$n" REVKIT_FUSED_LINEAR=1); a=$(fused_sample "$n" REVKIT_FUSED_LINEAR=0); fi
      samples+="$a $b"$'\n'
    done
    rows+="$(python3 -c "
import statistics, sys
p = [list(map(float, l.split())) for l in sys.argv[2].splitlines() if l.strip()]
med = statistics.median
names = ['inference step ms', 'off step ms', 'column step ms', 'column / off, one process',
         'recompute bound, one process']
for k, name in enumerate(names):
    a, b = med(r[k] for r in p), med(r[5 + k] for r in p)
    d = 0 if k < 3 else 3
    ratio = f'{med(r[5 + k] / r[k] for r in p):.3f}' if k < 3 else '-'
    print(f'| {sys.argv[1]} | {name} | {a:.{d}f} | {b:.{d}f} | {ratio} |')
" "$n" "$samples")"$'\n'
  done
  echo "$rows"
  python3 bench/put_section.py fused_linear --before layout <<MD
<!-- fused_linear:begin -->
## oneDNN's linear layers, bias and GELU fused

\`bash bench/process_pairs.sh --compare fused --pairs $pairs --columns "$columns"\` on $header: \`revkit bench
--backbone revcol_tiny --columns N --imgsz 224 --batch 2 --threads 2\` with \`--mode infer\` and with \`--interleave
off,column\`, 7 steps each, with \`REVKIT_FUSED_LINEAR=0\` (at::linear, then at::gelu) and without (a ConvNeXt
block's pointwise layers as oneDNN inner products with the bias added in their output pass, and the GELU too where
no gradient is recorded: \`core/fused_linear.h\`), $pairs pairs of processes, the side that starts alternating; medians, and the
medians of the per-pair ratios. The bound is 1 + a forward without autograd / an \`off\` step, measured in the same
process: what a step that recomputes every cell once costs at least.

| columns | measure | at::linear | fused | ratio |
|---|---|---|---|---|
$rows
<!-- fused_linear:end -->
MD
fi
