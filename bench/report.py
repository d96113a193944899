"""Turns the raw results of bench/run.sh into BENCHMARKS.md (markdown on stdout) and an SVG plot of activation
memory against columns."""
import glob
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys

out, steps, rounds, threads, have_python = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] == "1"
model_imgsz, model_batch, svg_path = sys.argv[6], sys.argv[7], sys.argv[8]


def lines(path):
    return [json.loads(l) for l in open(path)] if os.path.exists(path) else []


def merged(records, key):
    """One record per key, its step time the median over the rounds (the other fields from the first round)."""
    groups = {}
    for r in records:
        groups.setdefault(key(r), []).append(r)
    result = {}
    for k, rs in groups.items():
        r = dict(rs[0])
        r["step_ms"] = statistics.median(x["step_ms"] for x in rs)
        r["rounds"] = [x["step_ms"] for x in rs]
        result[k] = r
    return result


def cpu_model():
    for l in open("/proc/cpuinfo"):
        if l.startswith("model name"):
            return l.split(":", 1)[1].strip()
    return platform.processor()


def py_ms(record):
    return f"{record['step_ms']:.0f}" if record else "-"


def libtorch_version():
    """The LibTorch revkit was built against, as `revkit --version` reports it."""
    r = subprocess.run([os.environ.get("REVKIT", "build/bin/revkit"), "--version"], capture_output=True, text=True)
    lines = [l for l in r.stdout.splitlines() if l.startswith("LibTorch ")]
    return lines[0].split(" ", 1)[1] if lines else "unknown"


def variant(r):
    """The row label of a backbone training run."""
    if r["memory_mode"] == "full" and r["alpha_init"] == 1:
        return "full, alpha 1" + (f", {r['recompute_chunks']} pieces" if r["recompute_chunks"] > 1 else "")
    if r["memory_mode"] == "auto" and "budget_mb" in r:
        return ("auto budget", r["budget_mb"])
    if r["memory_mode"] == "column" and r.get("keep_columns", 0) > 0:
        return f"column, last {r['keep_columns']} kept"
    return r["memory_mode"]


def auto_label(r):
    return f"auto ({r.get('keep_columns', 0)} kept, k = {r['store_every']})"


rows = lines(os.path.join(out, "cpp.jsonl"))
train = merged([r for r in rows if "backbone" in r and r["mode"] == "train"], lambda r: (r["columns"], variant(r)))
infer = merged([r for r in rows if "backbone" in r and r["mode"] == "infer"], lambda r: r["columns"])
model_rows = merged([r for r in rows if "model" in r], lambda r: r["memory_mode"])
py = merged(lines(os.path.join(out, "py.jsonl")), lambda r: (r["subnets"], "off" if r["save_memory"] == 0 else "column"))
py_infer = merged(lines(os.path.join(out, "py_infer.jsonl")), lambda r: r["subnets"])
# Modes timed in turn in one process (revkit bench --interleave): the ratios between modes, taken within each round.
paired = {}  # (columns, label) -> ratio to the run's first mode; label "column" is column / off, and so on
paired_rows = []
for r in lines(os.path.join(out, "interleaved.jsonl")):
    modes = [m["memory_mode"] for m in r["interleaved"]]
    first = r["interleaved"][0]
    for m in r["interleaved"][1:]:
        if modes[0] == "off" and r["keep_columns"] > 0:
            label = f"{m['memory_mode']}, last {r['keep_columns']} kept / off"
        elif r["alpha_init"] == 1:
            label = f"{m['memory_mode']} / {first['memory_mode']}, alpha 1"
        else:
            label = f"{m['memory_mode']} / {first['memory_mode']}"
        paired[(r["columns"], label)] = m["ratio"]
        paired_rows.append((r["columns"], label, first["step_ms"], m["step_ms"], m["ratio"], r["steps"]))
columns = sorted({c for c, v in train if not isinstance(v, tuple)})
variants = ["off", "column", "column, last 1 kept", "full", "auto", "full, alpha 1", "full, alpha 1, 2 pieces"]
curve = {}  # columns -> the frontier runs, from the most memory to the least
for (n, v), r in train.items():
    if isinstance(v, tuple):
        curve.setdefault(n, []).append(r)
for n in curve:
    curve[n].sort(key=lambda r: -r["budget_mb"])
plans = {}  # columns -> every plan auto mode weighed
for path in glob.glob(os.path.join(out, "plans_*.jsonl")):
    ps = lines(path)
    if ps:
        plans[ps[0]["columns"]] = ps

checks = {}
for path in glob.glob(os.path.join(out, "check_*.txt")):
    mode, n, alpha = os.path.basename(path)[len("check_"):-len(".txt")].split("_")
    text = open(path).read()
    g = re.search(r"parameter gradients\s+(\S+)", text)
    d = re.search(r"col 0: (\S+)", text)
    k = re.search(r"store every (\d+) \(0: the last recomputed only\)", text)
    checks[(mode, int(n), float(alpha))] = (float(g.group(1)) if g else None, d.group(1) if d else "-",
                                            int(k.group(1)) if k else None)


def fmt_ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "-"


def paired_ratio(cpp, python):
    """revkit / Python: the median of the rounds' ratios (the two sides ran one after the other in each round)."""
    if not cpp or not python:
        return None
    pairs = list(zip(cpp["rounds"], python["rounds"]))
    return statistics.median(a / b for a, b in pairs) if pairs else None


print("# Benchmarks\n")
print("Written by `bash bench/run.sh` (raw numbers from `revkit bench --json`, the seed's `bench_reference.py` and "
      "`bench/reference_infer.py`, each configuration in its own process, C++ and Python interleaved).\n")
print(f"- Machine: {cpu_model()}, {os.cpu_count()} cores; {threads} intra-op threads for both sides")
python_torch = sorted({r["torch"] for r in py.values()}) if py else ["did not run"]
print(f"- LibTorch {libtorch_version()} (PyTorch's wheel), Python torch {', '.join(python_torch)} (the same wheel)")
print("- What changed in the kernels since LibTorch 1.13, operator by operator: `bench/profile_versions.md`; the 1.13 "
      "tables are kept at the end of this file")
print(f"- RevCol-T channels and layers, batch 2, 224x224, drop path 0; a training step = forward, loss = "
      f"sum_k mean(c_k^2), backward; an inference step = forward without autograd; each process times {steps} steps "
      f"after warm-up and reports their median; every time below is the median of {rounds} such processes run in "
      f"separate rounds over the table; a revkit / Python ratio is the median of the rounds' ratios (in each round "
      f"the two sides ran one after the other)\n")
print("Activation memory: `act` is revkit's CPU allocator's peak of bytes in tensors during one more step (after "
      "the timed ones) minus the bytes held before it; "
      "`rss` is peak-RSS growth of a 224x224 step over a 32x32 step, measured the way `bench_reference.py` does "
      "(the only column the Python side has). `auto (K kept, k = s)` shows its plan under its default budget (half of the "
      "memory available): the columns it kept and, among the others, a stored column every s (0: the last only).\n")

print("## Training step: time and activation memory\n")
print("| columns | mode | revkit ms | Python ms | ratio | revkit act MB | revkit rss MB | Python rss MB | step / off step |")
print("|---|---|---|---|---|---|---|---|---|")
for n in columns:
    off = train.get((n, "off"))
    for v in variants:
        r = train.get((n, v))
        if not r:
            continue
        p = py.get((n, v)) if v in ("off", "column") else None
        label = auto_label(r) if v == "auto" else v
        print(f"| {n} | {label} | {r['step_ms']:.0f} | {py_ms(p)} | "
              f"{f'{q:.2f}' if (q := paired_ratio(r, p)) is not None else '-'} | {r['act_mb']:.0f} | {r['rss_act_mb']:.0f} | "
              f"{p['act_mb'] if p else '-'} | {fmt_ratio(r['step_ms'], off['step_ms'] if off else None)} |")
if not have_python:
    print("\nThe Python side did not run here (no python3-torch or no reference scripts).")

print("\n![activation memory against columns](bench/activation_memory.svg)\n")

if curve:
    print("## The time/memory curve of auto mode\n")
    print("`revkit bench --memory-mode auto --plans` lists every plan auto mode weighs (for each number of kept "
          "columns, each store-every the drift allows, and how many recomputed columns keep their matrix "
          "products and upper levels), with the activation memory and recompute its cost model predicts from "
          "costs measured on the batch's first two samples. The rows below are the plans on its frontier (no plan with "
          "no more memory recomputes less), each run as `--memory-mode auto --memory-budget B` with B that plan's "
          "predicted memory: what auto mode chose under that budget, and what the step then measured.\n")
    for n in sorted(curve):
        off = train.get((n, "off"))
        print(f"{n} columns ({len(plans.get(n, []))} plans weighed, {len(curve[n])} on the frontier):\n")
        print("| budget MB | kept | store every | predicted MB | act MB | step ms | step / off step |")
        print("|---|---|---|---|---|---|---|")
        for r in curve[n]:
            print(f"| {r['budget_mb']:.1f} | {r['keep_columns']} | {r['store_every']} | {r['predicted_mb']:.0f} | "
                  f"{r['act_mb']:.0f} | {r['step_ms']:.0f} | {fmt_ratio(r['step_ms'], off['step_ms'] if off else None)} |")
        print()

if paired_rows:
    print("## Memory modes side by side in one process\n")
    print("`revkit bench --backbone revcol_tiny --columns N --imgsz 224 --batch 2 --interleave MODES`: one process "
          "per column count and list of modes (off,column,full gives two rows), a step of each mode in turn for "
          "several rounds (each mode first in turn, every other round in reverse order); the ratio is the "
          "median of the rounds' ratios, so the machine's drift between processes stays out of it. The goals on "
          "ratios between modes are judged on these.\n")
    print("| columns | modes | first mode ms | second mode ms | ratio | rounds |")
    print("|---|---|---|---|---|---|")
    for n, label, a, b, ratio, rounds_ in sorted(paired_rows):
        print(f"| {n} | {label} | {a:.0f} | {b:.0f} | {ratio:.2f} | {rounds_} |")
    print()

print("## Inference: forward without autograd\n")
print("| columns | revkit ms | Python ms | ratio |")
print("|---|---|---|---|")
for n in sorted(infer):
    p = py_infer.get(n)
    print(f"| {n} | {infer[n]['step_ms']:.0f} | {py_ms(p)} | "
          f"{f'{q:.2f}' if (q := paired_ratio(infer[n], p)) is not None else '-'} |")

print(f"\n## A whole detector: the seed's model, {model_imgsz}x{model_imgsz}, batch {model_batch}\n")
print("`revkit bench --model yolov5-revcol-tiny`: a training step with loss = sum over the head's maps of their "
      "mean square (the detection loss itself is timed in `bench/train.sh` below).\n")
print("| mode | step ms | act MB | rss MB | step / off step |")
print("|---|---|---|---|---|")
moff = model_rows.get("off")
for mode in ("off", "column", "full", "auto"):
    r = model_rows.get(mode)
    if r:
        label = auto_label(r) if mode == "auto" else mode
        print(f"| {label} | {r['step_ms']:.0f} | {r['act_mb']:.0f} | {r['rss_act_mb']:.0f} | "
              f"{fmt_ratio(r['step_ms'], moff['step_ms'] if moff else None)} |")

print("\n## Float32 gradient error against `off`\n")
print("`revkit check --backbone revcol_tiny --columns N --alpha-init A --dtype float32 --imgsz 64 --batch 1 "
      "--drop-path 0 --memory-mode MODE`: the worst norm-wise relative difference over parameter gradients, and the "
      "drift monitor's reconstruction error of column 0 (from the last column by N - 1 inverses).\n")
print("| alpha | columns | mode | worst parameter-gradient error | column-0 reconstruction error |")
print("|---|---|---|---|---|")
for (mode, n, alpha) in sorted(checks, key=lambda c: (c[2], c[1], c[0] != "full")):
    g, d, k = checks[(mode, n, alpha)]
    label = f"auto (k = {k})" if mode == "auto" else mode
    print(f"| {alpha:g} | {n} | {label} | {g:.3e} | {d} |" if g is not None else f"| {alpha:g} | {n} | {label} | - | {d} |")

# The goals of the performance issue, each met or not with its number.
print("\n## Goals\n")


def verdict(ok):
    return "met" if ok else "**not met**"


def worst_ratio(pairs):
    vals = [(r, n) for r, n in pairs if r is not None]
    return max(vals) if vals else (None, None)


goals = []
for label, mode in (("training step, plain", "off"), ("training step, reversible (column)", "column")):
    w, n = worst_ratio([(paired_ratio(train[(n, mode)], py[(n, mode)]), n)
                        for n in columns if (n, mode) in train and (n, mode) in py])
    if w is not None:
        goals.append((f"C++ {label} <= 0.9 x Python", f"worst ratio {w:.2f} (at {n} columns)", w <= 0.9))
w, n = worst_ratio([(paired_ratio(infer[n], py_infer[n]), n) for n in infer if n in py_infer])
if w is not None:
    goals.append(("C++ inference <= 0.9 x Python", f"worst ratio {w:.2f} (at {n} columns)", w <= 0.9))
# Ratios between modes: from the side-by-side runs in one process where there are some, else across processes.
def mode_ratio(n, paired_label, a, b):
    """(ratio, where it was measured) or (None, None)."""
    if (n, paired_label) in paired:
        return paired[(n, paired_label)], "side by side in one process"
    if (n, a) in train and (n, b) in train:
        return train[(n, a)]["step_ms"] / train[(n, b)]["step_ms"], "across processes"
    return None, None


r, where = mode_ratio(4, "column, last 1 kept / off", "column, last 1 kept", "off")
if r is not None:
    goals.append(("`column` step with the last column kept <= 1.25 x `off` at 4 columns", f"{r:.3f} ({where})",
                  r <= 1.25))
for goal, paired_label, a, b, bound in (
        ("`column` step <= 1.33 x `off` at every column count", "column / off", "column", "off", 1.33),
        ("`full` (alpha 1) step <= 1.05 x `column`", "full / column, alpha 1", "full, alpha 1", "column", 1.05)):
    found = [(*mode_ratio(n, paired_label, a, b), n) for n in columns]
    found = [f for f in found if f[0] is not None]
    if found:
        r, where, n = max(found)
        goals.append((goal, f"worst {r:.3f} (at {n} columns, {where})", r <= bound))
# Flat from the first column count with a column between the first and the last: with two, the one rebuilt column
# sits beside the last column's states, which the loss holds anyway, and the stem output's gradient is not yet
# allocated when the peak comes (about 3 MB less at 224, batch 2); with three or more, a rebuilt column and that
# gradient are both there at every column's peak.
hi = max(columns, default=None)
lo = min((n for n in columns if n >= 3), default=None)
a1 = "full, alpha 1"
if (lo, a1) in train and (hi, a1) in train and lo != hi:
    flat = train[(hi, a1)]["act_mb"] / train[(lo, a1)]["act_mb"]
    two = f"; at 2 columns {train[(2, a1)]['act_mb']:.0f} MB (no middle column)" if (2, a1) in train else ""
    goals.append((f"`full`, alpha 1: activation memory at {hi} columns <= 1.05 x at {lo}", f"{flat:.3f}{two}",
                  flat <= 1.05))
if (hi, a1) in train and (hi, "off") in train:
    frac = train[(hi, a1)]["act_mb"] / train[(hi, "off")]["act_mb"]
    goals.append((f"`full`, alpha 1: activation memory at {hi} columns <= 0.15 x `off`", f"{frac:.3f}", frac <= 0.15))
c = checks.get(("full", 16, 1.0))
if c and c[0] is not None:
    goals.append(("`full`, alpha 1, 16 columns: float32 gradients within 1e-4 of `off`", f"{c[0]:.1e}", c[0] <= 1e-4))
c = checks.get(("auto", 16, 0.5))
if c and c[0] is not None:
    goals.append((f"`auto`, alpha 0.5, 16 columns: float32 gradients within 1e-4 of `off` (k = {c[2]})", f"{c[0]:.1e}",
                  c[0] <= 1e-4))
for n, runs in sorted(curve.items()):
    over = [r for r in runs if r["act_mb"] > r["budget_mb"] * 1.05]
    goals.append((f"auto at {n} columns: activation memory within each budget of its curve (5% margin)",
                  f"{len(runs) - len(over)} of {len(runs)} budgets"
                  + (" (over: " + ", ".join(f"{r['act_mb']:.0f} MB for {r['budget_mb']:.0f}" for r in over) + ")"
                     if over else ""), not over))
# auto with every column kept runs exactly off's computation in another process: how far its time strays from
# off's is how much of any ratio above is the machine's noise.
gauge = [f"{r['step_ms'] / train[(n, 'off')]['step_ms']:.2f} at {n} columns" for n, runs in sorted(curve.items())
         for r in runs if r["keep_columns"] == n and (n, "off") in train]
if gauge:
    print("Noise: auto with every column kept runs `off`'s very computation, yet measured "
          + ", ".join(gauge) + " of `off`'s step time; ratios closer to a goal than that are not a verdict.\n")
print("| goal | measured | verdict |")
print("|---|---|---|")
for name, measured, ok in goals:
    print(f"| {name} | {measured} | {verdict(ok)} |")

# The plot: activation memory (tracked) against columns, one line per mode, on a log scale (off grows to 20x the
# reversible modes).
W, H, L, B, R, T = 640, 360, 60, 40, 190, 20
series = [(v, [(n, train[(n, v)]["act_mb"]) for n in columns if (n, v) in train]) for v in variants]
series = [(v, pts) for v, pts in series if pts]
values = [y for _, pts in series for _, y in pts if y > 0]
ylo = 10 ** math.floor(math.log10(min(values, default=1)))
yhi = 10 ** math.ceil(math.log10(max(values, default=10)))
xmax = max(columns, default=1)
colours = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def px(n):
    return L + (W - L - R) * (math.log2(n) / math.log2(xmax) if xmax > 1 else 0.5)


def py_(y):
    return H - B - (H - B - T) * (math.log10(max(y, ylo)) - math.log10(ylo)) / (math.log10(yhi) - math.log10(ylo))


svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>',
       f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>',
       f'<text x="{(L + W - R) / 2}" y="{H - 8}" text-anchor="middle">columns</text>',
       f'<text x="14" y="{(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 14 {(T + H - B) / 2})">'
       f'activation memory (MB, log scale)</text>']
for n in columns:
    svg.append(f'<text x="{px(n):.1f}" y="{H - B + 16}" text-anchor="middle">{n}</text>')
decade = ylo
while decade <= yhi:
    for m in (1, 2, 5):
        y = decade * m
        if y > yhi:
            break
        svg.append(f'<text x="{L - 6}" y="{py_(y) + 4:.1f}" text-anchor="end">{y:g}</text>')
        svg.append(f'<line x1="{L}" y1="{py_(y):.1f}" x2="{W - R}" y2="{py_(y):.1f}" stroke="#ddd"/>')
    decade *= 10
for i, (v, pts) in enumerate(series):
    col = colours[i % len(colours)]
    svg.append(f'<polyline fill="none" stroke="{col}" stroke-width="2" points="'
               + " ".join(f"{px(n):.1f},{py_(y):.1f}" for n, y in pts) + '"/>')
    for n, y in pts:
        svg.append(f'<circle cx="{px(n):.1f}" cy="{py_(y):.1f}" r="3" fill="{col}"/>')
    svg.append(f'<line x1="{W - R + 10}" y1="{T + 10 + 18 * i}" x2="{W - R + 30}" y2="{T + 10 + 18 * i}" '
               f'stroke="{col}" stroke-width="2"/>')
    svg.append(f'<text x="{W - R + 36}" y="{T + 14 + 18 * i}">{v}</text>')
svg.append("</svg>")
with open(svg_path, "w") as f:
    f.write("\n".join(svg) + "\n")
