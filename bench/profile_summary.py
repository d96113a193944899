"""Sums a Chrome trace written by `revkit bench --profile FILE` by operator: self time (the operator's time minus
that of operators nested in it on the same thread), total time and calls, the heaviest first.

  python3 bench/profile_summary.py FILE [ROWS]
"""
import collections
import json
import sys

trace = json.load(open(sys.argv[1]))
rows = int(sys.argv[2]) if len(sys.argv) > 2 else 25
events = [e for e in (trace["traceEvents"] if isinstance(trace, dict) else trace) if e.get("ph") == "X"]
by_thread = collections.defaultdict(list)
for e in events:
    by_thread[e.get("tid")].append(e)
self_us, total_us, calls = collections.Counter(), collections.Counter(), collections.Counter()
for evs in by_thread.values():
    evs.sort(key=lambda e: (e["ts"], -e["dur"]))
    stack = []  # (end, name)
    for e in evs:
        while stack and stack[-1][0] <= e["ts"]:
            stack.pop()
        if stack:
            self_us[stack[-1][1]] -= e["dur"]  # nested time is not the parent's own
        self_us[e["name"]] += e["dur"]
        total_us[e["name"]] += e["dur"]
        calls[e["name"]] += 1
        stack.append((e["ts"] + e["dur"], e["name"]))
whole = sum(self_us.values())
print(f"{'operator':50s} {'self ms':>9s} {'self %':>7s} {'total ms':>9s} {'calls':>6s}")
for name, us in self_us.most_common(rows):
    print(f"{name[:50]:50s} {us / 1000:9.2f} {100 * us / whole:6.1f}% {total_us[name] / 1000:9.2f} {calls[name]:6d}")
print(f"{'all':50s} {whole / 1000:9.2f}")
