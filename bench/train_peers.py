#!/usr/bin/env python3
"""Training side by side: `revkit train` against Ultralytics YOLOv5 v7.0 on the same PyTorch, data, image size,
batch and threads, every configuration a process of its own, the rounds interleaved (A B C ... A B C ...).

Pairs:
- the seed's detector (configs/yolov5-revcol-tiny.yaml): revkit in `column` and `full` against Ultralytics'
  train.py with the seed's change (its RevCol-T as rows 0-4, save_memory=True, which is what `column` does);
- yolov5n: revkit against Ultralytics' own yolov5n.yaml.

Each run trains one epoch from scratch (hyp.scratch-low, mosaic on, no loader workers) and validates. Measured per
run: the median step time over the epoch (from the batch in hand to the end of its optimizer step, as both tools
define an iteration; data loading is outside it), the process's CPU seconds up to the end of the training epoch
(before validation, since Ultralytics validates twice at the end and revkit once), and the peak RSS of the whole
process (os.wait4). Ratios are taken within each round and their median reported.

    ~/.local/share/revkit/ref-yolov5/bin/python bench/train_peers.py [--rounds 2] [--write BENCHMARKS.md]

Run from the repository root after the build, in the venv of tests/fixtures/ultralytics/README.md.
"""
import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from torch import nn

ROOT = Path(__file__).resolve().parents[1]
REVKIT = Path(os.environ.get('REVKIT', ROOT / 'build' / 'bin' / 'revkit'))
SEED_YAML = ROOT / 'configs' / 'yolov5-revcol-tiny.yaml'
REFERENCE = ROOT.parent / 'shared' / 'reference'
GOALS = {  # issue 18: revkit / Ultralytics, at most
    ('revcol', 'column', 'step_s'): 0.5,
    ('revcol', 'full', 'peak_rss_mb'): 0.4,
    ('revcol', 'column', 'cpu_s'): 1.0,
    ('yolov5n', 'revkit', 'step_s'): 0.8,
}


# ---------------------------------------------------------------------------------------------- Ultralytics side
class Level(nn.Module):  # row k: level k-1 of row 0's list of levels (module level: train.py pickles the model)
    def __init__(self, k):
        super().__init__()
        self.k = k

    def forward(self, levels):
        return levels[self.k]


def seed_change(yolo):
    """The seed's change to models/yolo.py, applied from outside: row 0 of the backbone is the seed's RevCol-T,
    whose four levels become rows 1-4 (as the seed's parse_model numbers them), and SPPF and the head refer to them
    by those rows. Built by wrapping parse_model: rows 0-4 are first parsed as placeholders that carry the levels'
    channels, then replaced by the seed's network and four modules that pick its levels."""
    sys.path.insert(0, str(REFERENCE))
    import seedref

    parse_model = yolo.parse_model

    def parse_with_revcol(d, ch):
        if d['backbone'][0][2] != 'revcol_tiny':
            return parse_model(d, ch)
        channels, layers, num_subnet, drop_path = seedref.VARIANTS['tiny']
        gw = d['width_multiple']
        placeholders = [[-1, 1, 'nn.Identity', []]] + [[0, 1, 'Conv', [c / gw, 1, 1]] for c in channels]
        d = dict(d, backbone=placeholders + d['backbone'][1:])
        model, save = parse_model(d, ch)
        # The seed's FullNet with its defaults (save_memory=True, drop_path 0.1); seedref probes its widths without
        # autograd at 64x64 instead of the seed's 640x640 forward, which would only add to this side's peak RSS.
        revcol = seedref.build(channels, layers, num_subnet, drop_path=drop_path, save_memory=True)
        for i, m in enumerate([revcol] + [Level(k) for k in range(4)]):
            m.i, m.f, m.type, m.np = i, model[i].f, type(m).__name__, sum(p.numel() for p in m.parameters())
            model[i] = m
        return model, save

    yolo.parse_model = parse_with_revcol


def ultralytics_child(opt):
    os.environ.update({'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD': '1', 'YOLOv5_AUTOINSTALL': 'false',
                       'ULTRALYTICS_SKIP_REQUIREMENTS_CHECKS': '1', 'WANDB_MODE': 'disabled'})
    import torch
    import yolov5
    import yolov5.models.yolo as yolo
    import yolov5.utils.general as ygeneral
    from yolov5 import train as ytrain
    from yolov5.utils.callbacks import Callbacks
    torch.set_num_threads(opt.threads)  # yolov5's import sets OMP_NUM_THREADS to cores - 1 for what comes later
    ygeneral.check_font = lambda *a, **k: None  # downloads a font for plots; none are made
    seed_change(yolo)
    pkg = Path(yolov5.__file__).parent
    cfg = str(SEED_YAML) if opt.model == 'revcol' else str(pkg / 'models' / 'yolov5n.yaml')

    steps, marks = [], {}
    callbacks = Callbacks()
    callbacks.register_action('on_train_batch_start', callback=lambda *a: marks.__setitem__('t0', time.perf_counter()))
    callbacks.register_action('on_train_batch_end', callback=lambda *a: steps.append(time.perf_counter() - marks['t0']))

    def epoch_end(*a, **k):
        usage = resource.getrusage(resource.RUSAGE_SELF)
        marks['cpu_s'] = usage.ru_utime + usage.ru_stime
        marks['epoch_peak_rss_mb'] = usage.ru_maxrss / 1024

    callbacks.register_action('on_train_epoch_end', callback=epoch_end)
    sys.argv = sys.argv[:1]  # parse_opt reads sys.argv
    o = ytrain.parse_opt(True)
    for k, v in dict(weights='', cfg=cfg, data=opt.data, hyp=str(pkg / 'data' / 'hyps' / 'hyp.scratch-low.yaml'),
                     epochs=1, batch_size=opt.batch, imgsz=opt.imgsz, workers=0, seed=0, device='cpu',
                     project=opt.project, name=opt.name, exist_ok=True, noplots=True).items():
        setattr(o, k, v)
    ytrain.main(o, callbacks=callbacks)
    Path(opt.stats).write_text(json.dumps({'step_s': statistics.median(steps), 'steps': len(steps),
                                           'cpu_s': marks['cpu_s'], 'epoch_peak_rss_mb': marks['epoch_peak_rss_mb']}))


# ---------------------------------------------------------------------------------------------- both sides
def run_measured(cmd, log, env):
    """Runs cmd to the end; its wall seconds and the peak RSS of its process (MB)."""
    t0 = time.time()
    with open(log, 'w') as f:
        p = subprocess.Popen([str(c) for c in cmd], stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise RuntimeError(f'{" ".join(map(str, cmd))} failed ({p.returncode}); see {log}')
    return time.time() - t0, usage.ru_maxrss / 1024


def run_revkit(model, mode, opt, work, name, env):
    log = work / f'{name}.log'
    cmd = [REVKIT, '--log-level', 'debug', 'train', '--model', model, '--data', opt.data, '--imgsz', opt.imgsz,
           '--batch', opt.batch, '--epochs', 1, '--workers', 0, '--seed', 0, '--project', work / 'runs', '--name',
           name, '--exist-ok'] + (['--memory-mode', mode] if mode else [])
    wall, peak = run_measured(cmd, log, env)
    text = log.read_text()
    step = float(re.search(r'([0-9.]+) s per iteration \(median\)', text).group(1))
    cpu = float(re.search(r'epoch 1: resident memory .*, CPU ([0-9.]+) s since the start', text).group(1))
    return {'step_s': step, 'cpu_s': cpu, 'peak_rss_mb': peak, 'wall_s': wall}


def run_ultralytics(model, opt, work, name, env):
    stats = work / f'{name}.json'
    cmd = [sys.executable, __file__, '--ultralytics-child', '--model', model, '--data', opt.data, '--imgsz',
           opt.imgsz, '--batch', opt.batch, '--threads', opt.threads, '--project', work / 'runs', '--name', name,
           '--stats', stats]
    wall, peak = run_measured(cmd, work / f'{name}.log', env)
    s = json.loads(stats.read_text())
    return {'step_s': s['step_s'], 'cpu_s': s['cpu_s'], 'peak_rss_mb': peak, 'wall_s': wall}


def local_data(src, work):
    """A copy of the dataset with an absolute `path:`: both tools then read the same files, and Ultralytics'
    label cache and check_dataset (which resolves a relative path against its package) stay inside work."""
    import yaml
    src = Path(src).resolve()
    data = yaml.safe_load(src.read_text())
    root = (src.parent / data.get('path', '.')).resolve()
    copy = work / 'data'
    for sub in ('images', 'labels'):
        shutil.copytree(root / sub, copy / sub)
    data['path'] = str(copy)
    out = copy / src.name
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(out)


RUNS = [  # (pair, side, how to run it); interleaved in this order within each round
    ('revcol', 'column', lambda o, w, n, e: run_revkit('yolov5-revcol-tiny', 'column', o, w, n, e)),
    ('revcol', 'ultralytics', lambda o, w, n, e: run_ultralytics('revcol', o, w, n, e)),
    ('revcol', 'full', lambda o, w, n, e: run_revkit('yolov5-revcol-tiny', 'full', o, w, n, e)),
    ('yolov5n', 'revkit', lambda o, w, n, e: run_revkit('yolov5n', None, o, w, n, e)),
    ('yolov5n', 'ultralytics', lambda o, w, n, e: run_ultralytics('yolov5n', o, w, n, e)),
]
METRICS = [('step_s', 's / iteration', '{:.2f}'), ('cpu_s', 'CPU s to the epoch end', '{:.0f}'),
           ('peak_rss_mb', 'peak RSS MB', '{:.0f}'), ('wall_s', 'wall s', '{:.0f}')]


def report(results, opt, command):
    med = lambda xs: statistics.median(xs)  # noqa: E731
    lines = [f'`{command}` on {time.strftime("%Y-%m-%d", time.gmtime())}, {opt.rounds} rounds interleaved, '
             f'{opt.threads} threads, {os.cpu_count()} cores, torch {opt.torch_version}: one epoch of '
             f'{Path(opt.data).name} at {opt.imgsz}, batch {opt.batch}, from scratch, no loader workers, then '
             'validation. Medians over the rounds; ratios are revkit / Ultralytics within each round, then the '
             'median.', '',
             '| model | side | ' + ' | '.join(m[1] for m in METRICS) + ' |', '|---|---|' + '---|' * len(METRICS)]
    for pair, side, _ in RUNS:
        rows = results[(pair, side)]
        lines.append(f'| {pair} | {side} | ' + ' | '.join(fmt.format(med([r[k] for r in rows])) for k, _, fmt in
                                                          METRICS) + ' |')
    lines += ['', '| ratio to Ultralytics | ' + ' | '.join(m[1] for m in METRICS) + ' | goal |',
              '|---|' + '---|' * (len(METRICS) + 1)]
    for pair, side, _ in RUNS:
        if side == 'ultralytics':
            continue
        ours, theirs = results[(pair, side)], results[(pair, 'ultralytics')]
        ratios = {k: med([a[k] / b[k] for a, b in zip(ours, theirs)]) for k, _, _ in METRICS}
        goals = [f'{m[1]} ≤ {g}: {"met" if ratios[m[0]] <= g else "missed"}' for m in METRICS
                 if (g := GOALS.get((pair, side, m[0])))]
        lines.append(f'| {pair} {side} | ' + ' | '.join(f'{ratios[k]:.2f}x' for k, _, _ in METRICS) +
                     f' | {"; ".join(goals) or "-"} |')
    return '\n'.join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--data', default=str(ROOT.parent / 'shared' / 'data' / 'coco128' / 'coco128.yaml'))
    ap.add_argument('--imgsz', type=int, default=320)
    ap.add_argument('--batch', type=int, default=8)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--rounds', type=int, default=2)
    ap.add_argument('--only', default='', help='comma-separated pairs to run (revcol, yolov5n); default both')
    ap.add_argument('--write', default='', help='put the tables into this markdown file between peers markers')
    ap.add_argument('--keep', default='', help='work folder to keep (logs, runs); default a temporary one')
    ap.add_argument('--ultralytics-child', action='store_true', help=argparse.SUPPRESS)
    ap.add_argument('--model', help=argparse.SUPPRESS)
    ap.add_argument('--project', help=argparse.SUPPRESS)
    ap.add_argument('--name', help=argparse.SUPPRESS)
    ap.add_argument('--stats', help=argparse.SUPPRESS)
    opt = ap.parse_args()
    if opt.ultralytics_child:
        return ultralytics_child(opt)
    if not REVKIT.exists():
        sys.exit(f'bench/train_peers.py: {REVKIT}: no revkit binary (build first, or set REVKIT)')
    import torch
    opt.torch_version = torch.__version__
    global RUNS
    if opt.only:
        RUNS = [r for r in RUNS if r[0] in opt.only.split(',')]
    command = 'bench/train_peers.py ' + ' '.join(sys.argv[1:])
    work = Path(opt.keep or tempfile.mkdtemp(prefix='train-peers-')).resolve()
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(opt.threads), MKL_NUM_THREADS=str(opt.threads))
    try:
        opt.data = local_data(opt.data, work)
        results = {(pair, side): [] for pair, side, _ in RUNS}
        for r in range(opt.rounds):
            for pair, side, run in RUNS:
                res = run(opt, work, f'{pair}_{side}_{r}', env)
                results[(pair, side)].append(res)
                print(f'round {r + 1}: {pair} {side}: ' + ', '.join(f'{k} {v:.2f}' for k, v in res.items()),
                      flush=True)
        table = report(results, opt, command)
        print('\n' + table)
        if opt.write:
            path = Path(opt.write)
            text = path.read_text()
            section = f'<!-- peers:begin -->\n{table}\n<!-- peers:end -->'
            pattern = re.compile(r'<!-- peers:begin -->.*?<!-- peers:end -->', re.S)
            if not pattern.search(text):
                sys.exit(f'{path}: no <!-- peers:begin --> ... <!-- peers:end --> markers to write between')
            path.write_text(pattern.sub(lambda _: section, text))
    finally:
        if not opt.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
