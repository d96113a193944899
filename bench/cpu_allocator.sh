#!/usr/bin/env bash
# revkit's CPU allocator against malloc, side by side: `revkit train` on the first 32 images of coco128 (the seed's
# detector at 320, batch 8, one epoch) with REVKIT_CPU_CACHE=0 (large blocks from malloc, as LibTorch's own
# allocator) and with the default, alternating in processes of their own for several pairs; reports each side's
# median step and peak RSS of the process, the medians of the per-pair ratios, and writes the table into
# BENCHMARKS.md between the "allocator" markers.
#
#   bash bench/cpu_allocator.sh [--pairs N] [--modes "full off"]
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=3
modes="full off"
while [ $# -gt 0 ]; do
  case "$1" in
    --pairs) pairs="$2"; shift 2 ;;
    --modes) modes="$2"; shift 2 ;;
    *) echo "bench/cpu_allocator.sh: unknown argument $1" >&2; exit 2 ;;
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
# One run: "<s per iteration> <peak RSS MB of the process>".
run() {
  REVKIT_CPU_CACHE=$2 OMP_NUM_THREADS=2 /usr/bin/time -f "%M" -o "$work/rss" "$revkit" train "${train_args[@]}" \
    --data "$work/data.yaml" --memory-mode "$1" --project "$work/runs" --name run --exist-ok > "$work/log" 2>&1
  echo "$(grep -o '[0-9.]* s per iteration (median)' "$work/log" | cut -d' ' -f1) $(( $(cat "$work/rss") / 1024 ))"
}
rows=""
for m in $modes; do
  samples=""
  for _ in $(seq "$pairs"); do samples+="$(run "$m" 0) $(run "$m" 1)"$'\n'; done
  row=$(python3 -c "
import statistics, sys
p = [tuple(map(float, l.split())) for l in sys.argv[2].splitlines() if l.strip()]
med = statistics.median
print(f'| {sys.argv[1]} | {med(r[0] for r in p):.2f} | {med(r[2] for r in p):.2f} | {med(r[2] / r[0] for r in p):.2f} '
      f'| {med(r[1] for r in p):.0f} | {med(r[3] for r in p):.0f} | {med(r[3] / r[1] for r in p):.2f} |')
" "$m" "$samples")
  echo "$row"
  rows+="$row"$'\n'
done
python3 bench/put_section.py allocator --before layout <<MD
<!-- allocator:begin -->
## revkit's CPU allocator against malloc

\`bash bench/cpu_allocator.sh\` on $(date -u +%Y-%m-%d), $(nproc) cores, $("$revkit" --version | sed -n 2p): \`revkit train ${train_args[*]} --data DATA --memory-mode MODE\`
on the first 32 images of coco128, with \`REVKIT_CPU_CACHE=0\` (large blocks from glibc's malloc, as LibTorch's
own allocator) and without (revkit's allocator, \`core/cpu_allocator.h\`), $pairs pairs of processes, the two
sides alternating; medians, and the medians of the per-pair ratios. Peak RSS is the whole process's.

| memory mode | malloc s / iteration | revkit s / iteration | ratio | malloc peak RSS MB | revkit peak RSS MB | ratio |
|---|---|---|---|---|---|---|
$rows
<!-- allocator:end -->
MD
