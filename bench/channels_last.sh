#!/usr/bin/env bash
# Channels-last against NCHW, side by side: `revkit bench --model M --channels-last off|on`, the two alternating in
# processes of their own for several pairs; reports each side's median step and the median of the per-pair
# ratios, and writes the table into BENCHMARKS.md between the "layout" markers.
#
#   bash bench/channels_last.sh [--pairs N] [--models "yolov5n yolov8n"] [--with-revcol]
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=6
models="yolov5n yolov8n"
revcol=0
while [ $# -gt 0 ]; do
  case "$1" in
    --pairs) pairs="$2"; shift 2 ;;
    --models) models="$2"; shift 2 ;;
    --with-revcol) revcol=1; shift ;;
    *) echo "bench/channels_last.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
revkit=build/bin/revkit
common="--imgsz 320 --batch 8 --threads 2"
configs=()
for m in $models; do configs+=("--model $m --mode train" "--model $m --mode infer"); done
[ "$revcol" = 1 ] && configs+=("--model yolov5-revcol-tiny --mode train --memory-mode column --steps 2")
step_ms() { OMP_NUM_THREADS=2 "$revkit" bench $1 $common --channels-last "$2" --json |
  python3 -c "import json, sys; print(json.loads(sys.stdin.read())['step_ms'])"; }
rows=""
for c in "${configs[@]}"; do
  samples=""
  for _ in $(seq "$pairs"); do samples+="$(step_ms "$c" off) $(step_ms "$c" on)"$'\n'; done
  row=$(python3 -c "
import statistics, sys
p = [tuple(map(float, l.split())) for l in sys.argv[2].splitlines() if l.strip()]
med = statistics.median
print(f'| \`{sys.argv[1]}\` | {med(a for a, _ in p):.0f} | {med(b for _, b in p):.0f} | {med(b / a for a, b in p):.2f} |')
" "$c" "$samples")
  echo "$row"
  rows+="$row"$'\n'
done
python3 bench/put_section.py layout --before train <<MD
<!-- layout:begin -->
## Channels-last against NCHW

\`bash bench/channels_last.sh\` on $(date -u +%Y-%m-%d), $(nproc) cores, $("$revkit" --version | sed -n 2p): \`revkit bench
CONFIG $common --channels-last off|on\`, $pairs pairs of processes, the two sides alternating; medians, and the
median of the per-pair ratios.

| config | NCHW ms | channels-last ms | ratio |
|---|---|---|---|
$rows
<!-- layout:end -->
MD
