"""Prints the memory budgets (MB) that walk auto mode's time/memory curve, one per line: from the plans
`revkit bench --plans` printed (JSON lines), those on the frontier (no other plan with no more memory recomputes
less), each as its predicted memory plus a small margin; at most MAX of them, evenly spread, both ends kept.

  python3 bench/frontier.py PLANS.jsonl [MAX]
"""
import json
import sys

plans = [json.loads(line) for line in open(sys.argv[1])]
most = int(sys.argv[2]) if len(sys.argv) > 2 else 0
frontier = []
for p in sorted(plans, key=lambda p: (p["predicted_mb"], p["recompute_ms"])):
    if not frontier or p["recompute_ms"] < frontier[-1]["recompute_ms"]:
        frontier.append(p)
if most and len(frontier) > most:
    frontier = [frontier[round(i * (len(frontier) - 1) / (most - 1))] for i in range(most)]
for p in frontier:
    print(f"{p['predicted_mb'] + 0.05:.2f}")
