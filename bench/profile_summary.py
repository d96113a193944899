"""Sums a Chrome trace written by `revkit bench --profile FILE` by operator: self time (the operator's time minus
that of operators nested in it on the same thread), total time and calls, the heaviest first. With --shapes, each
operator is split by the shapes and strides of its inputs (a matrix product's forward from its backward).

  python3 bench/profile_summary.py FILE [ROWS] [--shapes]
"""
import collections
import json
import sys

args = [a for a in sys.argv[1:] if not a.startswith("--")]
by_shape = "--shapes" in sys.argv
trace = json.load(open(args[0]))
rows = int(args[1]) if len(args) > 1 else 25
events = [e for e in (trace["traceEvents"] if isinstance(trace, dict) else trace)
          if e.get("ph") == "X" and e.get("cat", "cpu_op") == "cpu_op"]


def key(e):
    if not by_shape:
        return e["name"]
    a = e.get("args", {})
    return f"{e['name']} {a.get('Input Dims', '')} {a.get('Input Strides', '')}"


by_thread = collections.defaultdict(list)
for e in events:
    by_thread[e.get("tid")].append(e)
self_us, total_us, calls = collections.Counter(), collections.Counter(), collections.Counter()
for evs in by_thread.values():
    evs.sort(key=lambda e: (e["ts"], -e["dur"]))
    stack = []  # (end, key)
    for e in evs:
        while stack and stack[-1][0] <= e["ts"]:
            stack.pop()
        if stack:
            self_us[stack[-1][1]] -= e["dur"]  # nested time is not the parent's own
        k = key(e)
        self_us[k] += e["dur"]
        total_us[k] += e["dur"]
        calls[k] += 1
        stack.append((e["ts"] + e["dur"], k))
whole = sum(self_us.values())
width = 110 if by_shape else 50
print(f"{'operator':{width}s} {'self ms':>9s} {'self %':>7s} {'total ms':>9s} {'calls':>6s}")
for name, us in self_us.most_common(rows):
    print(f"{name[:width]:{width}s} {us / 1000:9.2f} {100 * us / whole:6.1f}% {total_us[name] / 1000:9.2f} "
          f"{calls[name]:6d}")
print(f"{'all':{width}s} {whole / 1000:9.2f}")
