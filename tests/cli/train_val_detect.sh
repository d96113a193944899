#!/usr/bin/env bash
# train_val_detect.sh REVKIT PROJECT_ROOT: the three commands end to end on a copy of coco8 with one corrupt image and
# one bad label row: both left out with warnings (named by file and line), an error with --strict; then val with
# --save-json and detect with --save-txt on the weights the run wrote.
set -u
revkit=$1 root=$2
assets=$root/assets
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
expect() {  # expect CODE PATTERN CMD...
  local code=$1 pattern=$2
  shift 2
  out=$("$@" 2>&1)
  local got=$?
  printf '%s\n' "$out" | tail -n 25
  [ "$got" -eq "$code" ] || fail "expected exit code $code, got $got: $*"
  grep -Eq -- "$pattern" <<<"$out" || fail "output does not match '$pattern': $*"
}

cp -r "$assets/coco8" "$work/data"
printf 'not a jpeg' > "$work/data/images/train/broken.jpg"
printf '0 0.5 0.5 0.2\n' >> "$work/data/labels/train/000000000009.txt"
data=$work/data/coco8.yaml
train=("$revkit" train --model yolov5n --data "$data" --imgsz 64 --batch 4 --epochs 1 --project "$work/runs" --seed 1)

expect 2 "000000000009.txt:[0-9]+: expected 5 columns" "${train[@]}" --strict
[ ! -e "$work/runs" ] || fail "a strict failure left a run folder"
expect 0 "broken.jpg: cannot decode image.*skipped" "${train[@]}"
grep -Eq "000000000009.txt:[0-9]+: expected 5 columns.*its image left out" <<<"$out" || fail "the bad label row is not named"
grep -Eq "skipped 2 images \(1 for a bad label row\)" <<<"$out" || fail "the summary does not count what was skipped"
run=$work/runs/exp
for f in args.yaml results.csv results.png weights/last.safetensors weights/best.safetensors weights/last.state.safetensors; do
  [ -s "$run/$f" ] || fail "missing $f"
done
[ "$(wc -l < "$run/results.csv")" -eq 2 ] || fail "results.csv should hold a header and one epoch"

expect 0 "all +4 +" "$revkit" val --weights "$run/weights/best.safetensors" --data "$data" --imgsz 64 --save-json "$work/dets.json"
grep -q '"category_id"' "$work/dets.json" || grep -qx '\[\]' "$work/dets.json" || fail "dets.json is not a COCO results list"
expect 2 "classes, but .* names" "$revkit" val --weights "$run/weights/best.safetensors" --data "$root/tests/cli/data/two_classes.yaml"

expect 0 "results in $work/out" "$revkit" detect --weights "$run/weights/best.safetensors" --source "$assets/coco8/images/val" \
  --imgsz 64 --conf 0.001 --out "$work/out" --save-txt
[ "$(ls "$work/out"/*.jpg | wc -l)" -eq 4 ] || fail "detect should draw 4 images"
[ -d "$work/out/labels" ] || fail "detect --save-txt wrote no labels"
expect 2 "nope.jpg: no such image or folder" "$revkit" detect --weights "$run/weights/best.safetensors" --source "$work/nope.jpg"

# A run started with a relative --data resumes from any folder: the run keeps its files by absolute path.
(cd "$work" && "$revkit" train --model yolov5n --data data/coco8.yaml --imgsz 64 --batch 4 --epochs 2 \
  --stop-after-epochs 1 --project runs_rel --seed 1 > /dev/null 2>&1) || fail "the relative-path run failed"
grep -qx "data: \"$work/data/coco8.yaml\"" "$work/runs_rel/exp/args.yaml" || fail "args.yaml keeps a relative --data"
cd /
expect 0 "epochs done, results in $work/runs_rel/exp" "$revkit" train --resume "$work/runs_rel/exp"


echo "PASS"
