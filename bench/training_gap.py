#!/usr/bin/env python3
"""Training gap: revkit's yolov5n against Ultralytics YOLOv5 v7.0's, from scratch, same recipe, several seeds.

Both train yolov5n.yaml from scratch with hyp.scratch-low (SGD, mosaic, warm-up, EMA) at the same image size,
batch and epochs, one thread each, and the final (last-epoch EMA) weights of every run are scored the same way:
`revkit val --metrics ultralytics` (val.py's rect batches and AP rule, which revkit reproduces within 0.002), next to
Ultralytics' own val.py number for its runs. Writes a markdown table with per-seed values, mean and spread.

    ~/.local/share/revkit/ref-yolov5/bin/python bench/training_gap.py --epochs 60 --seeds 0 1 2

Run from the repository root after the build, in the venv of tests/fixtures/ultralytics/README.md.
"""
import argparse
import concurrent.futures
import csv
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REVKIT = Path(os.environ.get('REVKIT', ROOT / 'build' / 'bin' / 'revkit'))  # or an installed copy
ONE_THREAD = {k: '1' for k in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS')}


def ultralytics_train(args):
    """Runs in a child process: Ultralytics' own train.py on one seed."""
    os.environ.update(ONE_THREAD)
    os.environ.update({'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD': '1', 'YOLOv5_AUTOINSTALL': 'false',
                       'ULTRALYTICS_SKIP_REQUIREMENTS_CHECKS': '1', 'WANDB_MODE': 'disabled'})
    import torch
    torch.set_num_threads(1)
    import yaml
    import yolov5
    import yolov5.utils.general as ygeneral
    from yolov5 import train as ytrain
    ygeneral.check_font = lambda *a, **k: None  # downloads a font for plots; none are made
    pkg = Path(yolov5.__file__).parent
    # check_dataset() resolves a relative `path:` against the package folder: give it an absolute one.
    data = yaml.safe_load(Path(args.data).read_text())
    data['path'] = str((Path(args.data).parent / data.get('path', '.')).resolve())
    data_yaml = Path(args.project) / f'data_{args.seed}.yaml'
    data_yaml.write_text(yaml.safe_dump(data, sort_keys=False))
    sys.argv = sys.argv[:1]  # train.run() parses sys.argv before applying its keyword arguments
    ytrain.run(weights='', cfg=str(pkg / 'models' / 'yolov5n.yaml'), data=str(data_yaml),
               hyp=str(pkg / 'data' / 'hyps' / 'hyp.scratch-low.yaml'), epochs=args.epochs, batch_size=args.batch,
               imgsz=args.imgsz, workers=0, seed=args.seed, device='cpu', project=args.project, name=args.name,
               exist_ok=True, patience=0, noplots=True)


def run_logged(cmd, log, env=None):
    t0 = time.time()
    with open(log, 'w') as f:
        rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    if rc != 0:
        raise RuntimeError(f'{" ".join(map(str, cmd))} failed ({rc}); see {log}')
    return time.time() - t0


def train_one(tool, seed, opt, work):
    name = f'{tool}_{seed}'
    env = dict(os.environ, **ONE_THREAD)
    if tool == 'revkit':
        cmd = [REVKIT, 'train', '--model', 'yolov5n', '--data', opt.data, '--imgsz', opt.imgsz, '--batch', opt.batch,
               '--epochs', opt.epochs, '--seed', seed, '--noval', '--workers', 0, '--project', work, '--name', name,
               '--exist-ok']
        weights = work / name / 'weights' / 'last.safetensors'
    else:
        cmd = [sys.executable, __file__, '--ultralytics-child', '--data', opt.data, '--imgsz', opt.imgsz, '--batch',
               opt.batch, '--epochs', opt.epochs, '--seed', seed, '--project', work, '--name', name]
        weights = work / name / 'weights' / 'last.pt'
    timing = work / f'{name}.seconds'
    if opt.reuse and weights.exists():  # a finished run from an earlier invocation with the same --work
        seconds = float(timing.read_text()) if timing.exists() else float('nan')
    else:
        seconds = run_logged([str(c) for c in cmd], work / f'{name}.log', env)
        timing.write_text(f'{seconds:.1f}\n')
    own = None
    if tool == 'ultralytics':  # val.py's number on its last epoch, as train.py reports it
        with open(work / name / 'results.csv') as f:
            rows = [{k.strip(): v for k, v in r.items()} for r in csv.DictReader(f)]
        own = (float(rows[-1]['metrics/mAP_0.5']), float(rows[-1]['metrics/mAP_0.5:0.95']))
    return dict(tool=tool, seed=seed, weights=weights, seconds=seconds, own=own)


def score(run, opt, work):
    log = work / f'val_{run["tool"]}_{run["seed"]}.log'
    run_logged([str(REVKIT), 'val', '--weights', str(run['weights']), '--data', opt.data, '--imgsz', str(opt.imgsz),
                '--metrics', 'ultralytics'], log, dict(os.environ, **ONE_THREAD))
    found = re.search(r'^mAP@0\.5 ([0-9.]+), mAP@0\.5:0\.95 ([0-9.]+) ', log.read_text(), re.M)
    if not found:
        raise RuntimeError(f'no mAP line in {log}')
    return float(found.group(1)), float(found.group(2))


def spread(values):
    return f'{statistics.mean(values):.5f} ± {statistics.stdev(values) if len(values) > 1 else 0:.5f}'


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--data', default=str(ROOT / 'assets' / 'coco128' / 'coco128.yaml'))
    ap.add_argument('--epochs', type=int, default=60)
    ap.add_argument('--imgsz', type=int, default=256)
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--seed', type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument('--jobs', type=int, default=2, help='runs at a time (one thread each)')
    ap.add_argument('--out', default=str(ROOT / 'bench' / 'training_gap.md'))
    ap.add_argument('--work', help='keep the runs here (default: a temporary folder)')
    ap.add_argument('--reuse', action='store_true', help='score the finished runs already in --work again')
    ap.add_argument('--ultralytics-child', action='store_true', help=argparse.SUPPRESS)
    ap.add_argument('--project', help=argparse.SUPPRESS)
    ap.add_argument('--name', help=argparse.SUPPRESS)
    opt = ap.parse_args()
    if opt.ultralytics_child:
        return ultralytics_train(opt)
    opt.data = str(Path(opt.data).resolve())
    work = Path(opt.work or tempfile.mkdtemp(prefix='revkit-gap-')).resolve()
    work.mkdir(parents=True, exist_ok=True)
    print(f'runs in {work}', flush=True)
    jobs = [(tool, seed) for seed in opt.seeds for tool in ('revkit', 'ultralytics')]
    with concurrent.futures.ThreadPoolExecutor(opt.jobs) as pool:
        runs = list(pool.map(lambda j: train_one(j[0], j[1], opt, work), jobs))
    for r in runs:
        r['map50'], r['map50_95'] = score(r, opt, work)
        print(f'{r["tool"]} seed {r["seed"]}: mAP50 {r["map50"]:.5f}, mAP50-95 {r["map50_95"]:.5f}, '
              f'{r["seconds"]:.0f} s', flush=True)

    by_tool = {t: [r for r in runs if r['tool'] == t] for t in ('revkit', 'ultralytics')}
    lines = [
        '# Training gap: revkit against Ultralytics YOLOv5 v7.0, from scratch',
        '',
        f'`{" ".join(sys.argv)}` on {time.strftime("%Y-%m-%d")}: yolov5n from scratch on '
        f'{Path(opt.data).name} at {opt.imgsz}, batch {opt.batch}, {opt.epochs} epochs, hyp.scratch-low, one thread per '
        f'run, {opt.jobs} runs at a time. Every run\'s last-epoch EMA weights scored by `revkit val --metrics '
        'ultralytics` (val.py\'s rect batches and AP rule); "val.py" is Ultralytics\' own number for its run.',
        '',
        '| seed | revkit mAP50 | Ultralytics mAP50 | revkit mAP50-95 | Ultralytics mAP50-95 | val.py mAP50 / 50-95 '
        '| revkit s | Ultralytics s |',
        '|---|---|---|---|---|---|---|---|',
    ]
    for seed in opt.seeds:
        a = next(r for r in by_tool['revkit'] if r['seed'] == seed)
        b = next(r for r in by_tool['ultralytics'] if r['seed'] == seed)
        lines.append(f'| {seed} | {a["map50"]:.5f} | {b["map50"]:.5f} | {a["map50_95"]:.5f} | {b["map50_95"]:.5f} '
                     f'| {b["own"][0]:.5f} / {b["own"][1]:.5f} | {a["seconds"]:.0f} | {b["seconds"]:.0f} |')
    m = {t: [r['map50'] for r in rs] for t, rs in by_tool.items()}
    m95 = {t: [r['map50_95'] for r in rs] for t, rs in by_tool.items()}
    lines.append(f'| mean ± sd | {spread(m["revkit"])} | {spread(m["ultralytics"])} | {spread(m95["revkit"])} '
                 f'| {spread(m95["ultralytics"])} | | | |')
    def ratio(values):
        return f'{statistics.mean(values["revkit"]) / statistics.mean(values["ultralytics"]):.2f}' \
            if statistics.mean(values['ultralytics']) > 0 else 'n/a'
    lines += ['', f'Mean ratio revkit / Ultralytics: mAP50 {ratio(m)}, mAP50-95 {ratio(m95)}.', '']
    Path(opt.out).write_text('\n'.join(lines))
    print('\n'.join(lines))


if __name__ == '__main__':
    sys.exit(main())
