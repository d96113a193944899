"""Profiles one training step of the seed's RevCol-T (plain autograd, batch 2 at 224) on whichever torch runs this
script, and prints the self CPU time per operator as JSON: run it under two PyTorch versions and compare the
kernels (bench/profile_versions.md). The same Python code on both sides, so only the library changes.

    PYTHONPATH=../shared/reference /usr/bin/python3 bench/profile_versions.py --columns 4 > torch113.json
    PYTHONPATH=../shared/reference:$HOME/.local/share/revkit/torch-2.11.0 /usr/bin/python3 bench/profile_versions.py \
        --columns 4 > torch211.json
    python3 bench/profile_versions.py --compare torch113.json torch211.json
"""
import argparse
import json
import statistics
import sys
import time


def profile(a):
    import torch
    import seedref

    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    channels, layers, _, _ = seedref.VARIANTS["tiny"]
    model = seedref.build(channels, layers, a.columns, drop_path=0.0, save_memory=False).train()
    x = torch.randn(a.batch, 3, a.size, a.size)

    def step():
        loss = sum(o.pow(2).mean() for o in model(x))
        loss.backward()

    step()
    times = []
    for _ in range(a.steps):
        t = time.perf_counter()
        step()
        times.append((time.perf_counter() - t) * 1000)
    with torch.autograd.profiler.profile() as prof:
        step()
    ops = {}
    for e in prof.key_averages():
        ops[e.key] = {"self_ms": e.self_cpu_time_total / 1000, "calls": e.count}
    print(json.dumps({"torch": torch.__version__, "step_ms": statistics.median(times), "ops": ops}))


def compare(paths, top):
    a, b = (json.load(open(p)) for p in paths)
    print(f"step: torch {a['torch']} {a['step_ms']:.0f} ms, torch {b['torch']} {b['step_ms']:.0f} ms "
          f"({b['step_ms'] / a['step_ms']:.2f}x)\n")
    print(f"| operator | calls | {a['torch']} self ms | {b['torch']} self ms | ratio |")
    print("|---|---|---|---|---|")
    names = sorted(set(a["ops"]) | set(b["ops"]),
                   key=lambda n: -max(a["ops"].get(n, {}).get("self_ms", 0), b["ops"].get(n, {}).get("self_ms", 0)))
    for n in names[:top]:
        x, y = a["ops"].get(n), b["ops"].get(n)
        ratio = f"{y['self_ms'] / x['self_ms']:.2f}" if x and y and x["self_ms"] > 0 else "-"
        calls = (x or y)["calls"]
        print(f"| `{n}` | {calls} | {x['self_ms'] if x else 0:.1f} | {y['self_ms'] if y else 0:.1f} | {ratio} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--columns", type=int, default=4)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--top", type=int, default=14)
    ap.add_argument("--compare", nargs=2, metavar="JSON")
    a = ap.parse_args()
    if a.compare:
        compare(a.compare, a.top)
    else:
        profile(a)


if __name__ == "__main__":
    sys.exit(main())
