#!/usr/bin/env bash
# Training benchmark of a whole detector: the seed's model (YOLOv5 head on RevCol-T) trained for one epoch on
# coco128 at imgsz 320, batch 8, mosaic on, no loader workers, then validated, once per memory mode. Reports
# seconds per iteration (median), images per second and the peak RSS of the process, and writes them into
# BENCHMARKS.md between the "train" markers.
#
#   bash bench/train.sh [DATA_YAML] [--epochs N] [--modes "off column full"]
set -euo pipefail
cd "$(dirname "$0")/.."
data="${REVKIT_COCO128:-../shared/data/coco128/coco128.yaml}"
epochs=1
modes="off column full"
while [ $# -gt 0 ]; do
  case "$1" in
    --epochs) epochs="$2"; shift 2 ;;
    --modes) modes="$2"; shift 2 ;;
    -*) echo "bench/train.sh: unknown argument $1" >&2; exit 2 ;;
    *) data="$1"; shift ;;
  esac
done
[ -f "$data" ] || { echo "bench/train.sh: $data: no such data yaml (pass coco128's)" >&2; exit 2; }
revkit=build/bin/revkit
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
rows=""
for mode in $modes; do
  log="$out/$mode.log"
  start=$(date +%s)
  "$revkit" train --model yolov5-revcol-tiny --data "$data" --imgsz 320 --batch 8 --epochs "$epochs" --workers 0 \
    --memory-mode "$mode" --project "$out/runs" --name "$mode" --seed 0 > "$log" 2>&1
  wall=$(( $(date +%s) - start ))
  summary=$(grep -E "s per iteration \(median\), peak RSS" "$log")
  sec=$(sed -E 's/.*; ([0-9.]+) s per iteration.*/\1/' <<<"$summary")
  rss=$(sed -E 's/.*peak RSS ([0-9]+) MB.*/\1/' <<<"$summary")
  map=$(sed -E 's/.*mAP@0.5 ([0-9.]+),.*/\1/' <<<"$summary")
  ips=$(python3 -c "print(f'{8 / $sec:.2f}')")
  echo "$mode: $sec s/iteration, $ips images/s, peak RSS $rss MB, $wall s wall (epoch + validation)"
  rows+="| $mode | $sec | $ips | $rss | $wall |"$'\n'
done

threads=$(nproc)
python3 bench/put_section.py train <<MD
<!-- train:begin -->
## Training a detector: the seed's model on coco128

\`bash bench/train.sh\` on $(date -u +%Y-%m-%d), $threads threads, $("$revkit" --version | sed -n 2p).
Command per mode: \`revkit train --model yolov5-revcol-tiny --data coco128.yaml --imgsz 320 --batch 8 --epochs $epochs
--workers 0 --memory-mode MODE\` (mosaic on), timed from the start of the process to the end of the epoch's
validation. Seconds per iteration are the median over the epoch's iterations, from the batch in hand to the end of
its optimizer step (data loading outside it). Against Ultralytics on the same PyTorch: the peers section above.

| memory mode | s / iteration | images / s | peak RSS (MB) | wall (s) |
|---|---|---|---|---|
$rows
<!-- train:end -->
MD
