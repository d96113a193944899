#!/usr/bin/env bash
# Memory over a long run: trains the seed's model on coco8 (mosaic on) and compares the resident memory after
# epoch 2 with that after the last epoch. A run that leaks grows; this one must stay within 5%.
#
#   bash bench/rss.sh [EPOCHS]    (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
epochs="${1:-10}"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
build/bin/revkit --log-level debug train --model yolov5-revcol-tiny --data assets/coco8/coco8.yaml --imgsz 160 --batch 4 \
  --epochs "$epochs" --project "$out" --name rss > "$out/log" 2>&1
grep -E "epoch [0-9]+: resident memory" "$out/log" | sed 's/^revkit: debug: //'
python3 - "$out/log" "$epochs" <<'PY'
import re, sys
rss = {int(m.group(1)): float(m.group(2)) for m in re.finditer(r"epoch (\d+): resident memory ([0-9.]+) MB", open(sys.argv[1]).read())}
last = int(sys.argv[2])
growth = rss[last] / rss[2] - 1
print(f"RSS after epoch 2: {rss[2]:.1f} MB, after epoch {last}: {rss[last]:.1f} MB, growth {100 * growth:+.1f}%")
sys.exit(0 if growth <= 0.05 else 1)
PY
