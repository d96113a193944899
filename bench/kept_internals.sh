#!/usr/bin/env bash
# Kept internals on the time/memory curve: RevCol-T training steps at 224, batch 2, in off, column and full mode
# with and without every recomputed column keeping its matrix products (--keep-matmuls) and its upper levels
# (--keep-levels), the modes timed in turn in one process (revkit bench --interleave), and the last column kept
# (--keep-columns 1) beside them. Writes the table into BENCHMARKS.md between the kept_internals markers.
#   bash bench/kept_internals.sh [--rounds N] [--columns "2 4 8"]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=9
columns="2 4 8"
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --columns) columns="$2"; shift 2 ;;
    *) echo "bench/kept_internals.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
revkit=$PWD/build/bin/revkit
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for c in $columns; do
  "$revkit" bench --backbone revcol_tiny --columns "$c" --imgsz 224 --batch 2 --steps "$rounds" --json \
    --interleave "off,column,column+matmuls,column+levels=1,column+matmuls+levels=1,column+levels=2,full,\
full+matmuls,full+levels=1,full+matmuls+levels=1" >> "$work/runs.jsonl"
  "$revkit" bench --backbone revcol_tiny --columns "$c" --imgsz 224 --batch 2 --steps "$rounds" --json \
    --interleave off,column --keep-columns 1 >> "$work/kept.jsonl"
done
/usr/bin/python3 - "$work" "$rounds" "$*" <<'PY' | /usr/bin/python3 bench/put_section.py kept_internals
import json, sys
work, rounds = sys.argv[1], sys.argv[2]
runs = [json.loads(l) for l in open(f"{work}/runs.jsonl")]
kept = {r["columns"]: r for r in map(json.loads, open(f"{work}/kept.jsonl"))}
print("<!-- kept_internals:begin -->")
print("## Kept internals: the time/memory curve between column and off\n")
print(f"`bash bench/kept_internals.sh --rounds {rounds}`: RevCol-T training steps at 224, batch 2, 2 threads, the "
      "modes timed in turn in one process (`revkit bench --interleave`), medians of the rounds' ratios to `off`. "
      "`+matmuls`: every recomputed column keeps its matrix products' outputs (`--keep-matmuls`); `+levels=N`: "
      "every recomputed column keeps the internals of its top N levels (`--keep-levels N`); "
      "`column, last kept`: `--keep-columns 1`, from a run of its own beside `off`. Only contracting products are "
      "kept (ConvNeXt's 4C -> C and the fusion's upsampling, `reversible/kept_matmuls.h`): their outputs are the "
      "narrow ones, so each kept byte saves the most multiplication. RevCol's upper levels take about as many "
      "operations as its lower ones at a fraction of the activations, so they are the cheap ones to keep. "
      "`recompute bound`: 1 + the ratio to `off` of a forward without autograd, timed in the same rounds: a step "
      "that recomputes every cell once (`column`, `full`) costs about `off`'s step plus that forward (the stem's "
      "forward is in it too, and is not recomputed).\n")
print("| columns | mode | step ms | x off | activation MB |")
print("|---|---|---|---|---|")
for r in runs:
    for row in r["interleaved"]:
        print(f"| {r['columns']} | {row['label']} | {row['step_ms']:.0f} | {row['ratio']:.3f} | {row['act_mb']:.1f} |")
    k = kept[r["columns"]]["interleaved"][1]
    print(f"| {r['columns']} | column, last kept | {k['step_ms']:.0f} | {k['ratio']:.3f} | {k['act_mb']:.1f} |")
    print(f"| {r['columns']} | recompute bound: off + a forward alone | | {1 + r['forward_ratio']:.3f} | |")
print("<!-- kept_internals:end -->")
PY
