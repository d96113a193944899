#!/usr/bin/env bash
# bench_plans.sh REVKIT: `revkit bench --memory-mode auto --plans` lists the plans auto mode weighs for the benchmarked
# input, so the plan it chose under the budget is among them with the same prediction. At batch 2 the costs come
# from two samples: the list scales them to the input the plan was made for, not per sample.
set -euo pipefail
err=$(mktemp)
trap 'rm -f "$err"' EXIT
plans=$("$1" bench --backbone revcol_tiny --columns 4 --imgsz 64 --batch 2 --memory-mode auto --plans \
  --memory-budget 30 2>"$err")
chosen=$(sed -n 's/.*memory mode auto at input [0-9x]*, budget 30 MB: //p' "$err")
[ -n "$chosen" ] || { echo "no plan chosen in the log: $(cat "$err")"; exit 1; }
grep -qF "\"plan\":\"$chosen\"" <<<"$plans" ||
  { echo "the chosen plan '$chosen' is not among the $(wc -l <<<"$plans") listed"; exit 1; }
echo "chose $chosen, listed among $(wc -l <<<"$plans") plans"
