"""Turns the raw results of bench/run.sh into BENCHMARKS.md (markdown on stdout)."""
import glob
import json
import os
import platform
import re
import subprocess
import sys

out, steps, threads, have_python = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"


def lines(path):
    return [json.loads(l) for l in open(path)] if os.path.exists(path) else []


def cpu_model():
    for l in open("/proc/cpuinfo"):
        if l.startswith("model name"):
            return l.split(":", 1)[1].strip()
    return platform.processor()


def pkg_version(name):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", name], capture_output=True, text=True)
    return r.stdout.strip() or "not installed"


cpp = {(r["columns"], r["memory_mode"]): r for r in lines(os.path.join(out, "cpp.jsonl"))}
py = {(r["subnets"], "off" if r["save_memory"] == 0 else "column"): r for r in lines(os.path.join(out, "py.jsonl"))}
columns = sorted({c for c, _ in cpp})

print("# Benchmarks\n")
print("Written by `bash bench/run.sh` (raw numbers from `revkit bench --json` and the seed's "
      "`bench_reference.py`, each configuration in its own process, C++ and Python interleaved).\n")
print(f"- Machine: {cpu_model()}, {os.cpu_count()} cores; {threads} intra-op threads for both sides")
print(f"- LibTorch {pkg_version('libtorch-dev')} (Debian), Python torch {pkg_version('python3-torch')}, "
      f"OpenBLAS {pkg_version('libopenblas0-openmp')}")
print(f"- RevCol-T channels and layers, batch 2, 224x224, drop path 0; one step = forward, loss = sum_k mean(c_k^2), "
      f"backward; median of {steps} timed steps after warm-up\n")
print("Activation memory: `act` is the tracking allocator's peak during a step minus the bytes held before it; "
      "`rss` is peak-RSS growth of a 224x224 step over a 32x32 step, measured the way `bench_reference.py` does "
      "(the only column the Python side has).\n")
print("## Step time and activation memory\n")
print("| columns | mode | revkit ms | Python ms | ratio | revkit act MB | revkit rss MB | Python rss MB | step / off step |")
print("|---|---|---|---|---|---|---|---|---|")
for n in columns:
    off = cpp.get((n, "off"))
    for mode in ("off", "column", "full"):
        r = cpp.get((n, mode))
        if not r:
            continue
        p = py.get((n, mode)) if mode != "full" else py.get((n, "column"))
        ratio = f"{r['step_ms'] / p['step_ms']:.2f}" if p else "-"
        over = f"{r['step_ms'] / off['step_ms']:.2f}" if off else "-"
        pms = f"{p['step_ms']:.0f}" if p else "-"
        prss = f"{p['act_mb']:.0f}" if p else "-"
        note = " (vs Python's reversible)" if mode == "full" and p else ""
        print(f"| {n} | {mode} | {r['step_ms']:.0f} | {pms}{note} | {ratio} | {r['act_mb']:.0f} | {r['rss_act_mb']:.0f} | {prss} | {over} |")
if not have_python:
    print("\nThe Python side did not run here (no python3-torch or no reference scripts).")

print("\n## Float32 gradient error of `full` against `off`\n")
print("`revkit check --backbone revcol_tiny --columns N --alpha-init A --dtype float32 --imgsz 64 --batch 1 "
      "--drop-path 0 --memory-mode full`: the worst norm-wise relative difference over parameter gradients, and the "
      "drift monitor's reconstruction error of column 0.\n")
print("| alpha | columns | worst parameter-gradient error | column-0 reconstruction error |")
print("|---|---|---|---|")
for path in sorted(glob.glob(os.path.join(out, "check_*.txt")), key=lambda p: (float(p.split("_")[-1][:-4]), int(p.split("_")[-2]))):
    n, alpha = path.split("_")[-2], path.split("_")[-1][:-4]
    text = open(path).read()
    g = re.search(r"parameter gradients\s+(\S+)", text)
    d = re.search(r"col 0: (\S+)", text)
    print(f"| {alpha} | {n} | {g.group(1) if g else '-'} | {d.group(1) if d else '-'} |")
