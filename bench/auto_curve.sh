#!/usr/bin/env bash
# The time/memory curve auto mode walks, each point timed side by side with off: RevCol-T at 224, batch 2, at 4 and
# 16 columns. From the plans `revkit bench --memory-mode auto --plans` weighs, up to MAX on its frontier (no plan
# with no more memory recomputes less, bench/frontier.py); for each, the plan auto mode chooses under that plan's
# predicted memory as its budget, then that plan's settings (full mode with its kept columns, store-every, kept
# matrix products and kept levels, which is what auto runs) against off in one process (revkit bench --interleave
# off,full).
# Writes the table into BENCHMARKS.md between the auto_curve markers.
#   bash bench/auto_curve.sh [--rounds N] [--columns "4 16"] [--max MAX]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=5
columns="4 16"
max=8
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --columns) columns="$2"; shift 2 ;;
    --max) max="$2"; shift 2 ;;
    *) echo "bench/auto_curve.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
revkit=$PWD/build/bin/revkit
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for n in $columns; do
  backbone=(--backbone revcol_tiny --columns "$n" --imgsz 224 --batch 2)
  "$revkit" bench "${backbone[@]}" --memory-mode auto --plans > "$work/plans_$n.jsonl"
  for budget in $(/usr/bin/python3 bench/frontier.py "$work/plans_$n.jsonl" "$max"); do
    echo "auto curve: $n columns, budget $budget MB" >&2
    chosen=$("$revkit" bench "${backbone[@]}" --memory-mode auto --memory-budget "$budget" --steps 1 --json)
    read -r keep every matmuls levels <<<"$(/usr/bin/python3 -c 'import json, sys; r = json.loads(sys.argv[1])
print(r["keep_columns"], r["store_every"], r["keep_matmuls"], r["keep_levels"])' "$chosen")"
    timed=$("$revkit" bench "${backbone[@]}" --steps "$rounds" --json --interleave off,full \
      --keep-columns "$keep" --store-every "$every" --keep-matmuls "$matmuls" --keep-levels "$levels")
    printf '{"budget_mb": %s, "chosen": %s, "timed": %s}\n' "$budget" "$chosen" "$timed" >> "$work/curve_$n.jsonl"
  done
done
/usr/bin/python3 - "$work" "$rounds" "$columns" <<'PY' | /usr/bin/python3 bench/put_section.py auto_curve
import json, sys
work, rounds, columns = sys.argv[1], sys.argv[2], sys.argv[3].split()
print("<!-- auto_curve:begin -->")
print("## The time/memory curve of auto mode, side by side with off\n")
print(f"`bash bench/auto_curve.sh --rounds {rounds}`: the plans on the frontier of those `revkit bench --memory-mode "
      "auto --plans` weighs (kept columns, store-every, recomputed columns keeping their contracting matrix "
      "products, and upper levels kept in every recomputed column), each given as auto mode's budget (its predicted "
      "memory); the plan auto then chose, run with its settings against `off` in one process (`--interleave "
      "off,full --keep-columns K --store-every S --keep-matmuls M --keep-levels L`), medians of the rounds' ratios. "
      "RevCol-T at 224, batch 2, 2 threads.\n")
for n in columns:
    rows = [json.loads(l) for l in open(f"{work}/curve_{n}.jsonl")]
    plans = sum(1 for _ in open(f"{work}/plans_{n}.jsonl"))
    print(f"{n} columns ({plans} plans weighed, {len(rows)} from the frontier):\n")
    print("| budget MB | kept | store every | keeping products | kept levels | predicted MB | act MB | "
          "step / off step |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        c, t = r["chosen"], r["timed"]["interleaved"]
        print(f"| {r['budget_mb']:.1f} | {c['keep_columns']} | {c['store_every']} | {c['keep_matmuls']} | "
              f"{c['keep_levels']} | {c['predicted_mb']:.0f} | {t[1]['act_mb']:.0f} | {t[1]['ratio']:.3f} |")
    print()
print("<!-- auto_curve:end -->")
PY
