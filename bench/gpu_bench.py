"""revkit against the seed's Python on one device, side by side, written as one markdown file.

Per memory mode: step time and activation memory of RevCol-T (batch 2 at 224), the largest RevCol-T batch at 224
whose training step fits in a memory budget (`off` against `full`, and the seed's two settings), and the seed's
detector (640x640, batch 16). C++ numbers come from `revkit bench --json` (activation memory from the CUDA caching
allocator's statistics), Python numbers from the seed's code in this process, measured the same way: a warm-up
step, then the median of timed steps, then the peak of bytes in tensors during one more step above what was held
at its start. The Python runs are interleaved with the C++ ones.

    python3 bench/gpu_bench.py --revkit build-gpu/bin/revkit --reference .gpu-check/reference --out results.md
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import seed_detector  # noqa: E402


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def python_step(model, x):
    loss = sum(o.pow(2).mean() for o in model(x))
    loss.backward()


def python_measure(seedref, what, save_memory, batch, size, steps, device):
    """The seed's model: median step ms, activation MB and the MB held at the step's start (CUDA only)."""
    torch.manual_seed(0)
    if what == "detector":
        model = seed_detector.build(seedref, save_memory)
    else:
        channels, layers, columns, _ = seedref.VARIANTS["tiny"]
        model = seedref.build(channels, layers, columns, drop_path=0.0, save_memory=save_memory)
    model = model.to(device).train()
    x = torch.randn(batch, 3, size, size, device=device)
    python_step(model, x)
    times = []
    for _ in range(steps):
        sync(device)
        t = time.perf_counter()
        python_step(model, x)
        sync(device)
        times.append((time.perf_counter() - t) * 1000)
    act = held = None
    if device.type == "cuda":
        held = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        python_step(model, x)
        sync(device)
        act = (torch.cuda.max_memory_allocated(device) - held) / 2**20
        held /= 2**20
    del model, x
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {"step_ms": statistics.median(times), "act_mb": act, "held_mb": held}


# A row's memory mode and its extra options, as revkit bench --interleave names them: +matmuls keeps every
# recomputed column's contracting products, +levels=N the internals of its top N levels.
def mode_args(mode):
    name, *options = mode.split("+")
    args = ["--memory-mode", name]
    for option in options:
        if option == "matmuls":
            args += ["--keep-matmuls", "1000"]
        elif option.startswith("levels="):
            args += ["--keep-levels", option[len("levels="):]]
        else:
            raise ValueError(f"unknown mode option +{option} in {mode}")
    return args


def revkit_measure(revkit, device, what, mode, batch, size, steps):
    args = [revkit, "bench", "--json", "--device", str(device), *mode_args(mode), "--batch", str(batch),
            "--imgsz", str(size), "--steps", str(steps)]
    args += ["--model", "yolov5-revcol-tiny"] if what == "detector" else ["--backbone", "revcol_tiny"]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["failed"])[-1]}
    j = json.loads(r.stdout.strip().splitlines()[-1])
    return {"step_ms": j["step_ms"], "act_mb": j["act_mb"], "held_mb": j.get("held_mb")}


def largest_batch(measure, budget_mb, probe=(2, 8)):
    """The largest batch whose held + activation memory stays within the budget: a line through two probe batches
    predicts it, then steps down until a measured step fits (memory grows linearly with the batch)."""
    a, b = measure(probe[0]), measure(probe[1])
    if "error" in a or "error" in b or a.get("held_mb") is None:
        return None
    total = lambda r: r["held_mb"] + r["act_mb"]
    per_image = (total(b) - total(a)) / (probe[1] - probe[0])
    fixed = total(a) - per_image * probe[0]
    batch = max(int((budget_mb - fixed) / per_image), 1)
    for _ in range(4):
        r = measure(batch)
        if "error" not in r and total(r) <= budget_mb:
            return {"batch": batch, "total_mb": total(r), "ms_per_image": r["step_ms"] / batch}
        batch = max(int(batch * 0.95), 1)
    return None


def cell(value, fmt="{:.1f}"):
    return "-" if value is None else fmt.format(value)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--revkit", required=True)
    ap.add_argument("--reference", required=True, help="the folder holding the seed's seedref.py")
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--budget-mb", type=float, default=16384, help="memory budget of the largest-batch search")
    ap.add_argument("--size", type=int, default=224, help="RevCol-T input side")
    ap.add_argument("--detector-size", type=int, default=640)
    ap.add_argument("--detector-batch", type=int, default=16)
    a = ap.parse_args()
    sys.path.insert(0, a.reference)
    import seedref

    device = torch.device(a.device)
    lines = [f"# revkit against the seed's Python on {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'the CPU'}",
             "", f"`python3 bench/gpu_bench.py --device {a.device} --steps {a.steps} --budget-mb {a.budget_mb:.0f}` "
             f"(torch {torch.__version__}); times are medians of {a.steps} steps, memory in MB of tensors.", ""]

    def emit(line):  # the results file is rewritten after every row, so a run cut short keeps what it measured
        lines.append(line)
        print(line, flush=True)
        with open(a.out, "w") as f:
            f.write("\n".join(lines) + "\n")

    # Python's settings: save_memory=False is the plain step (off), True the seed's reversible step (column).
    seed_modes = {"off": False, "column": True}
    for what, size, batch in (("RevCol-T", a.size, 2), ("detector", a.detector_size, a.detector_batch)):
        lines += [f"## {'RevCol-T' if what == 'RevCol-T' else 'The seed detector'}: training step, batch {batch} at "
                  f"{size}x{size}", "",
                  "| mode | revkit ms | Python ms | ratio | revkit act MB | Python act MB | step / off step |",
                  "|---|---|---|---|---|---|---|"]
        off_ms = None
        # Kept levels on the backbone alone: the detector's rows come before the largest-batch search, within the
        # check's time.
        kept_levels = ("full+levels=1", "full+matmuls+levels=1") if what == "RevCol-T" else ()
        for mode in ("off", "column", "full", "full+matmuls", *kept_levels, "auto"):
            c = revkit_measure(a.revkit, device, what, mode, batch, size, a.steps)
            p = python_measure(seedref, what, seed_modes[mode], batch, size, a.steps, device) if mode in seed_modes else {}
            if "error" in c:
                emit(f"| {mode} | {c['error']} | | | | | |")
                continue
            off_ms = off_ms or c["step_ms"]
            ratio = c["step_ms"] / p["step_ms"] if p.get("step_ms") else None
            emit(f"| {mode} | {c['step_ms']:.1f} | {cell(p.get('step_ms'))} | {cell(ratio, '{:.2f}')} | "
                 f"{cell(c['act_mb'])} | {cell(p.get('act_mb'))} | {c['step_ms'] / off_ms:.2f} |")
        lines.append("")

    lines += [f"## RevCol-T at {a.size}: the largest batch within {a.budget_mb:.0f} MB", "",
              "| implementation | mode | batch | MB used | ms per image |", "|---|---|---|---|---|"]
    found = {}
    full_modes = ("full", "full+matmuls", "full+matmuls+levels=1")
    for impl, mode in (("revkit", "off"), *(("revkit", m) for m in full_modes), ("Python", "off"),
                       ("Python", "column")):
        if impl == "revkit":
            measure = lambda b, m=mode: revkit_measure(a.revkit, device, "RevCol-T", m, b, a.size, 2)
        else:
            measure = lambda b, m=mode: python_measure(seedref, "RevCol-T", seed_modes[m], b, a.size, 2, device)
        r = largest_batch(measure, a.budget_mb)
        found[(impl, mode)] = r
        emit(f"| {impl} | {mode} | " + (f"{r['batch']} | {r['total_mb']:.0f} | {r['ms_per_image']:.2f} |" if r
                                         else "- | - | - |"))
    off = found.get(("revkit", "off"))
    for mode in full_modes:
        r = found.get(("revkit", mode))
        if off and r:
            emit("")
            emit(f"revkit `{mode}` fits {r['batch'] / off['batch']:.2f}x the batch of `off` in the same memory, "
                 f"at {r['ms_per_image'] / off['ms_per_image']:.2f}x its time per image.")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
