"""Times the seed's RevCol forward pass without autograd (inference), the counterpart of `revkit bench --mode infer`.

bench_reference.py times training steps only; this builds the same model from the same reference module and prints
one JSON line with the median forward time:

  python3 bench/reference_infer.py REFERENCE_DIR --subnets 4 --batch 2 --size 224 --steps 5 --threads 2
"""
import argparse
import json
import statistics
import sys
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("reference", help="the folder holding seedref.py")
    ap.add_argument("--subnets", type=int, default=4)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    sys.path.insert(0, a.reference)
    import seedref

    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    ch, ly, _, _ = seedref.VARIANTS["tiny"]
    model = seedref.build(ch, ly, a.subnets, drop_path=0.0, save_memory=False).eval()
    x = torch.randn(a.batch, 3, a.size, a.size)
    times = []
    with torch.no_grad():
        model(x)  # warm-up
        for _ in range(a.steps):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    print(json.dumps({"impl": "seed-python", "mode": "infer", "subnets": a.subnets, "batch": a.batch,
                      "size": a.size, "threads": a.threads, "step_ms": round(statistics.median(times) * 1000, 1)}))


if __name__ == "__main__":
    main()
