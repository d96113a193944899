#!/usr/bin/env bash
# README command one: install what is missing, build, then the main job: RevCol checked against the seed's
# Python, and the seed's detector (YOLOv5 head on the reversible RevCol-T, memory mode `full`) trained from
# scratch on the eight bundled coco8 images, validated, and run on images.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
revkit=build/bin/revkit
echo
echo "== RevCol against the seed's Python: outputs and gradients, every memory mode"
"$revkit" check --fixture tests/fixtures/revcol_small_f32.safetensors
echo
echo "== Training the seed's model (yolov5-revcol-tiny, 31 M parameters) from scratch on coco8's 8 images"
echo "   There are no pretrained weights to start from, so the demo fits these images and validates on the same"
echo "   images (assets/coco8/coco8-fit.yaml): the mAP shows that it learns, not how well it generalises."
echo "   No augmentation, one batch of 8 per epoch, lr0 0.02 without warm-up, weights kept every 50 epochs."
"$revkit" train --model yolov5-revcol-tiny --memory-mode full --data assets/coco8/coco8-fit.yaml --imgsz 128 \
  --batch 8 --epochs 150 --no-augment --warmup-epochs 0 --nbs 8 --lr0 0.02 --noval --checkpoint-every 50 \
  --project runs/demo --name fit --exist-ok
weights=runs/demo/fit/weights/best.safetensors
echo
echo "== revkit val on the weights the run wrote (square letterboxes, as the fit saw its eight images)"
# A model that memorised eight pictures at one placement does not survive rect batches' other placement.
"$revkit" val --weights "$weights" --data assets/coco8/coco8-fit.yaml --imgsz 128 --batch 8 --square
echo
echo "== revkit detect (confidence 0.1: a model fitted in minutes is not yet sure of itself): runs/demo/detect"
"$revkit" detect --weights "$weights" --source assets/coco8/images/val --imgsz 128 --conf 0.1 --out runs/demo/detect
echo
echo "Run folder: runs/demo/fit (results.csv, results.png, val_batch0_pred.jpg, weights/)"
