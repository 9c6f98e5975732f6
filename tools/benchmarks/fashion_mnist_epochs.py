# Copyright (c) OpenMMLab. All rights reserved.
"""Equal-epoch quality table: every method pre-trained on Fashion-MNIST.

The tool behind the equal-*epoch* tables of the method pages
(``docs/experiments/{bim,prmim,localmim,mixmim}.md``,
``configs/<algo>/README.md``, ``docs/benchmarks.md``): for each method's
``configs/<algo>/<algo>_<family>-*_fashion-mnist.py`` (``--family``,
default ``vit-tiny``: the ViT-Tiny/4 configs those runs used; the same tiny
encoder, epochs and data for all; MAE is the baseline, random
initialisation the floor): pre-train, scoring the frozen encoder with kNN
(k=20, cosine) and a linear probe on the test split at several points of
training, so accuracy per epoch is visible. Equal epochs are not equal
cost: the equal-budget comparison (seconds, FLOPs) is
``tools/benchmarks/fashion_mnist.py``, with which this tool shares its
config lookup.

With ``--finetune`` / ``--linear`` the pre-trained checkpoint then goes
through the method's Fashion-MNIST fine-tune / linear-probe config
(``configs/<algo>/benchmarks/vit-tiny-p4_1xb256-{coslr,linear-coslr}-10e_
fashion-mnist.py``, the backbone loaded through its ``init_cfg``; trained on
``--eval-train-samples`` training images for ``--transfer-epochs``) and the
top-1 on ``--eval-test-samples`` test images joins the table.  Writes
``quality.json``, ``quality.md`` and ``quality.png`` into ``--out``.

``quality.md`` also tabulates the accuracy-vs-epoch curve (mean over seeds)
and, for every method, the first epoch at which that curve reaches the
``--baseline`` method's final kNN and probe top-1, and the gaps at half the
epochs to that final, paired by seed (is a difference of means larger than
the seeds' spread?).  ``--merge`` builds the
same outputs from several finished runs (e.g. one process per method and
seed, run in parallel), after checking they share one protocol.

Example:
    python tools/benchmarks/fashion_mnist_epochs.py --methods mae bim \
        --epochs 10
    python tools/benchmarks/fashion_mnist_epochs.py --methods mae \
        --finetune --linear
    python tools/benchmarks/fashion_mnist_epochs.py --quick  # smoke version
    python tools/benchmarks/fashion_mnist_epochs.py --merge runs/mae_s0 \
        runs/mae_s1 runs/localmim_s0 runs/localmim_s1 --out runs/merged
"""
import argparse
import copy
import glob
import json
import logging
import os
import os.path as osp
import platform
import re
import statistics
import sys
import time
import uuid
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config, DictAction
from mmengine.hooks import Hook
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

import mim_plugins  # noqa: F401
from mim_plugins.benchmarks import measure_config
from mim_plugins.engine.hooks import FeatureEvalHook
from mim_plugins.utils import set_max_epochs

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from fashion_mnist import ALL_METHODS, REPO_ROOT, find_config  # noqa: E402
# transfer recipe -> (config name pattern, result key, table column)
TRANSFER = {
    'finetune': (r'.+_\d+xb\d+-coslr-\d+e_fashion-mnist\.py', 'finetune_top1',
                 'fine-tune top-1 (%)'),
    'linear': (r'.+_\d+xb\d+-linear-coslr-\d+e_fashion-mnist\.py',
               'linear_cfg_top1', 'linear-probe config top-1 (%)'),
}
# meta fields that must agree for runs to be merged into one table
PROTOCOL_KEYS = ('family', 'epochs', 'train_images', 'eval_train_samples',
                 'eval_test_samples', 'probe_epochs', 'transfer_epochs',
                 'quick')
# meta fields that say where a run ran (kept per run by --merge)
ORIGIN_KEYS = ('machine', 'device', 'torch')
SCORES = (('knn_top1', 'kNN'), ('linear_top1', 'probe'))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--methods', nargs='+', default=ALL_METHODS, choices=ALL_METHODS)
    parser.add_argument(
        '--family',
        default='vit-tiny',
        help='config family: configs/<algo>/<algo>_<family>-*_fashion-'
        'mnist.py (default: vit-tiny, the configs of the recorded runs)')
    parser.add_argument('--epochs', type=int, default=10)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument(
        '--eval-points',
        type=int,
        default=4,
        help='evaluate every epochs/N epochs (plus at random init)')
    parser.add_argument(
        '--no-init-eval',
        action='store_true',
        help='skip the evaluation at random initialisation (saves one '
        'feature evaluation per run; no "random init" row)')
    parser.add_argument(
        '--train-samples',
        type=int,
        default=0,
        help='pre-train on the first N training images (0 = all)')
    parser.add_argument('--eval-train-samples', type=int, default=10000)
    parser.add_argument('--eval-test-samples', type=int, default=10000)
    parser.add_argument('--probe-epochs', type=int, default=100)
    parser.add_argument('--batch-size', type=int, default=None)
    parser.add_argument(
        '--data-root',
        default=None,
        help='folder with the Fashion-MNIST IDX files (default: the '
        'configs\' data/fashion-mnist)')
    parser.add_argument(
        '--quick',
        action='store_true',
        help='a small version: 1 epoch, 512 images, small evaluation')
    parser.add_argument(
        '--finetune',
        action='store_true',
        help='also fine-tune each pre-trained encoder with the method\'s '
        'Fashion-MNIST fine-tune config')
    parser.add_argument(
        '--linear',
        action='store_true',
        help='also run the method\'s Fashion-MNIST linear-probe config '
        '(frozen encoder, BatchNorm neck, LARS)')
    parser.add_argument(
        '--transfer-epochs',
        type=int,
        default=None,
        help='epochs of the --finetune / --linear runs (default: 10, '
        '1 with --quick)')
    parser.add_argument(
        '--baseline',
        default='mae',
        help='method whose final scores the others\' curves are measured '
        'against ("epochs to reach")')
    parser.add_argument(
        '--merge',
        nargs='+',
        metavar='RUN',
        help='no training: merge finished runs (folders holding '
        'quality.json, or the files) into one table')
    parser.add_argument('--out', default='work_dirs/quality')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help='config overrides')
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.eval_points = 1, 1
        args.train_samples = args.train_samples or 512
        args.eval_train_samples = min(args.eval_train_samples, 500)
        args.eval_test_samples = min(args.eval_test_samples, 200)
        args.probe_epochs = min(args.probe_epochs, 20)
        args.batch_size = args.batch_size or 32
    if args.transfer_epochs is None:
        args.transfer_epochs = 1 if args.quick else 10
    return args


def find_transfer_config(method: str, recipe: str) -> Optional[str]:
    """The method's Fashion-MNIST fine-tune or linear-probe config."""
    pattern = TRANSFER[recipe][0]
    folder = osp.join(REPO_ROOT, 'configs', method, 'benchmarks')
    paths = sorted(
        p for p in glob.glob(osp.join(folder, '*_fashion-mnist.py'))
        if re.fullmatch(pattern, osp.basename(p)))
    return paths[0] if paths else None


class LastMetrics(Hook):
    """Keeps the metrics of the latest validation."""

    def __init__(self) -> None:
        self.metrics: Dict[str, float] = {}

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.metrics = dict(metrics or {})


def run_transfer(config: str, checkpoint: str, seed: int,
                 args: argparse.Namespace, work_dir: str) -> float:
    """Train ``config`` from ``checkpoint``; test-split top-1 at the end."""
    cfg = Config.fromfile(config)
    set_max_epochs(cfg, args.transfer_epochs)
    cfg.model.backbone.init_cfg.checkpoint = checkpoint
    train, val = cfg.train_dataloader, cfg.val_dataloader
    train.dataset.indices = args.eval_train_samples
    val.dataset.indices = args.eval_test_samples
    if args.batch_size:
        train.batch_size = args.batch_size
    if args.data_root:
        train.dataset.data_prefix = args.data_root
        val.dataset.data_prefix = args.data_root
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    # the options given for the pre-training loader hold for evaluation too
    for key in ('num_workers', 'persistent_workers'):
        if key in cfg.train_dataloader:
            cfg.val_dataloader[key] = cfg.train_dataloader[key]
    cfg.test_dataloader = cfg.test_evaluator = cfg.test_cfg = None
    cfg.train_cfg.val_interval = args.transfer_epochs  # only at the end
    cfg.randomness = dict(seed=seed, diff_rank_seed=False)
    cfg.work_dir = work_dir
    cfg.experiment_name = f'transfer_{uuid.uuid4().hex[:8]}'
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=-1, save_last=False)
    cfg.launcher = 'none'
    runner = Runner.from_cfg(cfg)
    hook = LastMetrics()
    runner.register_hook(hook)
    runner.train()
    return hook.metrics['accuracy/top1']


def eval_epochs(epochs: int, points: int, init: bool = True) -> List[int]:
    step = max(1, epochs // max(1, points))
    return sorted({epochs, *range(step, epochs + 1, step)}
                  | ({0} if init else set()))


def rescale_schedule(cfg: Config, epochs: int) -> None:
    """Set the run's epochs, keeping the schedule's shape.

    mmengine truncates epoch boundaries to whole iterations; on the recorded
    runs' data (20,000 images) that gives what they used, so it is kept.
    Only where truncation would leave a scheduler without an iteration
    (tiny smoke runs) are the boundaries rounded to iterations instead.
    """
    trial = copy.deepcopy(cfg)
    set_max_epochs(trial, epochs)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    length = len(Runner.build_dataloader(copy.deepcopy(cfg.train_dataloader)))
    empty = any(
        int(s.get('end', epochs) * length) <= int(s.get('begin', 0) * length)
        for s in trial.get('param_scheduler') or []
        if s.get('by_epoch', True) and s.get('end') is not None)
    set_max_epochs(cfg, epochs, length if empty else None)


def run_one(config: str, seed: int, args: argparse.Namespace) -> Dict:
    cfg = Config.fromfile(config)
    if args.train_samples:
        cfg.train_dataloader.dataset.indices = args.train_samples
    if args.batch_size:
        cfg.train_dataloader.batch_size = args.batch_size
    if args.data_root:
        cfg.train_dataloader.dataset.data_prefix = args.data_root
        for split in ('train', 'test'):
            cfg.feature_eval_data[split].data_prefix = args.data_root
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    rescale_schedule(cfg, args.epochs)
    cfg.randomness = dict(seed=seed, diff_rank_seed=False)
    cfg.work_dir = osp.join(args.out, osp.basename(osp.dirname(config)),
                            f'seed{seed}')
    cfg.experiment_name = f'quality_{uuid.uuid4().hex[:8]}'
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=args.epochs, max_keep_ckpts=1)
    cfg.launcher = 'none'
    runner = Runner.from_cfg(cfg)
    hook = FeatureEvalHook(
        eval_epochs(args.epochs, args.eval_points, not args.no_init_eval),
        train_samples=args.eval_train_samples,
        test_samples=args.eval_test_samples,
        probe_epochs=args.probe_epochs)
    runner.register_hook(hook)
    t0 = time.time()
    runner.train()
    result = dict(
        seed=seed, total_seconds=time.time() - t0, curve=hook.history)
    checkpoint = osp.join(cfg.work_dir, f'epoch_{args.epochs}.pth')
    for recipe, (_, key, _) in TRANSFER.items():
        if not getattr(args, recipe):
            continue
        transfer_config = find_transfer_config(
            osp.basename(osp.dirname(config)), recipe)
        if transfer_config is None:
            print(f'[quality] no {recipe} config for {config}, skipped')
            continue
        print(f'[quality]   {recipe}: '
              f'{osp.relpath(transfer_config, REPO_ROOT)}')
        result[key] = run_transfer(transfer_config, checkpoint, seed, args,
                                   osp.join(cfg.work_dir, recipe))
    return result


def summarize(values: List[float]) -> Dict[str, float]:
    return dict(
        mean=statistics.mean(values),
        std=statistics.stdev(values) if len(values) > 1 else 0.0)


def mean_curve(runs: List[Dict]) -> List[Dict]:
    """The seeds' mean scores at every evaluated epoch they all share."""
    common = set.intersection(*({p['epoch']
                                 for p in run['curve']} for run in runs))
    curve = []
    for epoch in sorted(common):
        points = [
            next(p for p in run['curve'] if p['epoch'] == epoch)
            for run in runs
        ]
        curve.append(
            dict(
                epoch=epoch,
                **{
                    key: statistics.mean(p[key] for p in points)
                    for key in ('knn_top1', 'linear_top1', 'pc1_share')
                    if all(key in p for p in points)
                }))
    return curve


def reach_epoch(curve: List[Dict], key: str, target: float) -> Optional[int]:
    """First trained epoch whose mean ``key`` is at least ``target``."""
    return next((p['epoch']
                 for p in curve if p['epoch'] > 0 and p[key] >= target), None)


def make_row(method: str, config: str, epochs: int, batch: Optional[int],
             peak_bytes: Optional[float], runs: List[Dict]) -> Dict:
    """One table row: the runs of a method and their summaries."""
    finals = [run['curve'][-1] for run in runs]
    transfer = {
        key: summarize([run[key] for run in runs])
        for _, key, _ in TRANSFER.values() if key in runs[0]
    }
    return dict(
        **transfer,
        method=method,
        config=config,
        epochs=epochs,
        batch=batch,
        peak_bytes=peak_bytes,
        pretrain_seconds=summarize([f['pretrain_seconds'] for f in finals]),
        knn_top1=summarize([f['knn_top1'] for f in finals]),
        linear_top1=summarize([f['linear_top1'] for f in finals]),
        mean_curve=mean_curve(runs),
        runs=runs)


def floor_row(rows: List[Dict]) -> Optional[Dict]:
    """The 'random init' row from the runs evaluated before training."""
    floor = [
        run['curve'][0] for row in rows for run in row['runs']
        if run['curve'][0]['epoch'] == 0
    ]
    if not floor:
        return None
    return dict(
        method='random init',
        epochs=0,
        batch=None,
        peak_bytes=None,
        pretrain_seconds=dict(mean=0.0, std=0.0),
        knn_top1=summarize([f['knn_top1'] for f in floor]),
        linear_top1=summarize([f['linear_top1'] for f in floor]),
        runs=[])


def add_reach(rows: List[Dict], baseline: str) -> None:
    """Record in each row when its mean curve reaches ``baseline``'s final.

    ``reach_baseline[key]`` is the first epoch whose seed-mean score is at
    least the baseline's final seed-mean score (None if never).
    """
    base = next((r for r in rows if r['method'] == baseline), None)
    for row in rows:
        row.pop('reach_baseline', None)
        if base is None or row is base or 'mean_curve' not in row:
            continue
        row['reach_baseline'] = dict(
            baseline=baseline,
            **{
                key: reach_epoch(row['mean_curve'], key, base[key]['mean'])
                for key, _ in SCORES
            })
        half = half_epoch_gaps(row, base)
        if half:
            row['reach_baseline']['half'] = half


def half_epoch_gaps(row: Dict, base: Dict) -> Optional[Dict]:
    """Per-seed gaps at half the epochs to the baseline's final score.

    Pairs each seed of ``row`` with the same seed of ``base``: the gap is
    the row's score at epoch ``epochs // 2`` minus the baseline's final.
    When both methods ran the same seeds, the mean of the gaps is the
    difference of the means; their spread says whether that difference
    stands out from the seeds' noise.

    Returns:
        ``dict(epoch=E, seeds=[...], knn_top1=dict(gaps, mean, std, ahead),
        linear_top1=...)``, or None when no seed has both runs or some
        paired run was not evaluated at epoch E.
    """
    epoch = row['epochs'] // 2
    if epoch == 0:
        return None
    finals = {run['seed']: run['curve'][-1] for run in base['runs']}
    pairs = []
    for run in row['runs']:
        if run['seed'] not in finals:
            continue
        point = next((p for p in run['curve'] if p['epoch'] == epoch), None)
        if point is None:
            return None
        pairs.append((run['seed'], point, finals[run['seed']]))
    if not pairs:
        return None
    half = dict(epoch=epoch, seeds=[seed for seed, _, _ in pairs])
    for key, _ in SCORES:
        gaps = [point[key] - final[key] for _, point, final in pairs]
        half[key] = dict(
            gaps=gaps, ahead=sum(gap >= 0 for gap in gaps), **summarize(gaps))
    return half


def load_report(path: str) -> Dict:
    if osp.isdir(path):
        path = osp.join(path, 'quality.json')
    if not osp.isfile(path):
        raise FileNotFoundError(f'--merge: no quality.json at {path}')
    with open(path) as f:
        return json.load(f)


def merge_reports(reports: Sequence[Dict]) -> Tuple[List[Dict], Dict]:
    """Rows and meta of several finished runs of one protocol.

    Runs of the same method are pooled (each seed once); the summaries,
    mean curves and the random-init floor are recomputed from the runs.

    Raises:
        ValueError: If the reports differ in a :data:`PROTOCOL_KEYS` field
            or hold the same method and seed twice.
    """
    meta = dict(reports[0]['meta'])
    for report in reports[1:]:
        for key in PROTOCOL_KEYS:
            if report['meta'].get(key) != meta.get(key):
                raise ValueError(
                    f'--merge: the runs differ in {key} '
                    f'({meta.get(key)} vs {report["meta"].get(key)}); '
                    'merge only runs of one protocol')
    pooled: Dict[str, Dict] = {}
    for report in reports:
        for row in report['rows']:
            if row['method'] == 'random init':
                continue
            entry = pooled.setdefault(row['method'], dict(row, runs=[]))
            seen = {run['seed'] for run in entry['runs']}
            for run in row['runs']:
                if run['seed'] in seen:
                    raise ValueError(f'--merge: {row["method"]} seed '
                                     f'{run["seed"]} appears twice')
                seen.add(run['seed'])
                # runs may come from different machines: keep each origin
                origin = {
                    key: report['meta'].get(key, '?')
                    for key in ORIGIN_KEYS
                }
                entry['runs'].append(dict(origin, **run))
    rows = [
        make_row(m, e['config'], e['epochs'], e['batch'], e['peak_bytes'],
                 sorted(e['runs'], key=lambda run: run['seed']))
        for m, e in pooled.items()
    ]
    floor = floor_row(rows)
    if floor:
        rows.append(floor)
    meta['seeds'] = sorted(
        {run['seed']
         for row in rows
         for run in row['runs']})
    for key in ORIGIN_KEYS:
        values = sorted({str(r['meta'].get(key, '?')) for r in reports})
        meta[key] = '; '.join(values)
    return rows, meta


def to_markdown(rows: List[Dict], meta: Dict) -> str:
    gib = 1024**3
    transfer = [(key, column) for _, key, column in TRANSFER.values()
                if any(key in row for row in rows)]
    lines = [
        f"Fashion-MNIST, {meta['epochs']} epochs, "
        f"{meta['train_images']} pre-training images, seeds {meta['seeds']};"
        f" evaluation on {meta['eval_test_samples']} test images "
        f"(kNN bank / probe: {meta['eval_train_samples']} training images); "
        f"machine {meta['machine']}; device {meta.get('device', '?')}; "
        f"torch {meta['torch']}.", '',
        '| method | epochs | pre-train time (s) | peak memory (GiB) @ batch '
        '| kNN top-1 (%) | probe top-1 (%) |' +
        ''.join(f' {column} |' for _, column in transfer),
        '| --- | --- | --- | --- | --- | --- |' + ' --- |' * len(transfer)
    ]

    def fmt(stat):
        return f"{stat['mean']:.2f} ± {stat['std']:.2f}"

    for row in rows:
        mem = row.get('peak_bytes')
        mem = f"{mem / gib:.2f} @ {row['batch']}" if mem else '-'
        # a mean time over runs on different devices would mean nothing
        devices = {run.get('device') for run in row['runs']}
        secs = ('mixed devices' if len(devices) > 1 else
                f"{row['pretrain_seconds']['mean']:.0f}")
        lines.append(f"| {row['method']} | {row['epochs']} | "
                     f"{secs} | {mem} | "
                     f"{fmt(row['knn_top1'])} | {fmt(row['linear_top1'])} |" +
                     ''.join(f' {fmt(row[key]) if key in row else "-"} |'
                             for key, _ in transfer))
    return '\n'.join(lines + curve_markdown(rows)) + '\n'


def curve_markdown(rows: List[Dict]) -> List[str]:
    """The mean accuracy-vs-epoch table and the epochs-to-reach lines."""
    rows = [r for r in rows if r.get('mean_curve')]
    if not rows:
        return []
    epochs = sorted({p['epoch'] for r in rows for p in r['mean_curve']})
    lines = [
        '', 'Accuracy vs epoch, mean over the seeds, kNN / probe top-1 (%):',
        '', '| method |' + ''.join(f' epoch {e} |' for e in epochs),
        '| --- |' + ' --- |' * len(epochs)
    ]
    for row in rows:
        points = {p['epoch']: p for p in row['mean_curve']}
        lines.append(f"| {row['method']} |" + ''.join(
            f" {points[e]['knn_top1']:.2f} / {points[e]['linear_top1']:.2f} |"
            if e in points else ' - |' for e in epochs))
    reach = [r for r in rows if 'reach_baseline' in r]
    if reach:
        base = reach[0]['reach_baseline']['baseline']
        lines += [
            '', f'First epoch whose mean reaches {base}\'s final '
            'mean:', ''
        ]
        for row in reach:
            parts = []
            for key, name in SCORES:
                epoch = row['reach_baseline'][key]
                parts.append(f'{name} not reached' if epoch is None else
                             f'{name} epoch {epoch} of {row["epochs"]} '
                             f'({epoch / row["epochs"]:.2f}x)')
            lines.append(f"- {row['method']}: " + ', '.join(parts))
        for row in reach:
            half = row['reach_baseline'].get('half')
            if not half:
                continue
            lines += [
                '', f"{row['method']} at epoch {half['epoch']} minus {base}'s "
                f"final, paired by seed {half['seeds']}:", ''
            ]
            for key, name in SCORES:
                gap = half[key]
                lines.append(
                    f'- {name}: ' + ', '.join(f'{g:+.2f}'
                                              for g in gap['gaps']) +
                    f" (mean {gap['mean']:+.2f} ± {gap['std']:.2f}; "
                    f"{gap['ahead']} of {len(gap['gaps'])} seeds at or "
                    'above)')
    return lines


def plot(rows: List[Dict], out_file: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for row in rows:
        if row['method'] == 'random init':
            continue
        curves = [run['curve'] for run in row['runs']]
        n = min(len(c) for c in curves)
        epochs = [curves[0][i]['epoch'] for i in range(n)]
        probe = [
            statistics.mean(c[i]['linear_top1'] for c in curves)
            for i in range(n)
        ]
        wall = [
            statistics.mean(c[i]['pretrain_seconds'] for c in curves)
            for i in range(n)
        ]
        axes[0].plot(epochs, probe, marker='o', label=row['method'])
        axes[1].plot(wall, probe, marker='o', label=row['method'])
    axes[0].set_xlabel('epoch')
    axes[1].set_xlabel('pre-training wall time (s)')
    for ax in axes:
        ax.set_ylabel('linear-probe top-1 (%)')
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_file, dpi=120)
    plt.close(fig)


def main() -> None:
    args = parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.merge:
        rows, meta = merge_reports([load_report(p) for p in args.merge])
        write_outputs(rows, meta, args)
        return
    MMLogger.get_instance('mmengine').setLevel(logging.WARNING)
    rows = []
    for method in args.methods:
        config = find_config(method, args.family)
        if config is None:
            print(f'[quality] {method}: no configs/{method}/'
                  f'{method}_{args.family}-*_fashion-mnist.py, skipped')
            continue
        print(f'[quality] {method}: {osp.relpath(config, REPO_ROOT)}')
        runs = [run_one(config, seed, args) for seed in args.seeds]
        cfg = Config.fromfile(config)
        batch = args.batch_size or cfg.train_dataloader.batch_size
        mem = measure_config(
            config,
            batch_size=2 if args.quick else 8,
            mem_batch=batch,
            iters=1)
        rows.append(
            make_row(method, osp.relpath(config, REPO_ROOT), args.epochs,
                     batch, mem['peak_bytes_at_mem_batch'], runs))
    if not rows:
        raise SystemExit('no method had a Fashion-MNIST config')
    floor = floor_row(rows)
    if floor:
        rows.append(floor)
    meta = dict(
        family=args.family,
        epochs=args.epochs,
        seeds=args.seeds,
        train_images=args.train_samples or 60000,
        eval_train_samples=args.eval_train_samples,
        eval_test_samples=args.eval_test_samples,
        probe_epochs=args.probe_epochs,
        machine=f'{platform.machine()}, {os.cpu_count()} CPUs',
        device=torch.cuda.get_device_name(0)
        if torch.cuda.is_available() else 'no GPU',
        torch=torch.__version__,
        transfer_epochs=args.transfer_epochs
        if args.finetune or args.linear else None,
        quick=args.quick)
    write_outputs(rows, meta, args)


def write_outputs(rows: List[Dict], meta: Dict,
                  args: argparse.Namespace) -> None:
    add_reach(rows, args.baseline)
    with open(osp.join(args.out, 'quality.json'), 'w') as f:
        json.dump(dict(meta=meta, rows=rows), f, indent=2)
    table = to_markdown(rows, meta)
    with open(osp.join(args.out, 'quality.md'), 'w') as f:
        f.write(table)
    plot(rows, osp.join(args.out, 'quality.png'))
    print(table)


if __name__ == '__main__':
    main()
