# Copyright (c) OpenMMLab. All rights reserved.
"""Quality table: every method pre-trained on Fashion-MNIST, same budget.

For each method's ``configs/<algo>/<algo>_*_fashion-mnist.py`` (the same tiny
encoder, epochs and data for all; MAE is the baseline, random initialisation
the floor): pre-train, scoring the frozen encoder with kNN (k=20, cosine) and
a linear probe on the test split at several points of training, so
time-to-accuracy is visible.  With ``--finetune`` / ``--linear`` the
pre-trained checkpoint then goes through the method's Fashion-MNIST
fine-tune / linear-probe config (``configs/<algo>/benchmarks/
vit-tiny-p4_1xb256-{coslr,linear-coslr}-10e_fashion-mnist.py``, the backbone
loaded through its ``init_cfg``; trained on ``--eval-train-samples``
training images for ``--transfer-epochs``) and the top-1 on
``--eval-test-samples`` test images joins the table.  Writes
``quality.json``, ``quality.md`` and ``quality.png`` into ``--out``.

Example:
    python tools/benchmarks/fashion_mnist.py --methods mae bim --epochs 10
    python tools/benchmarks/fashion_mnist.py --methods mae --finetune --linear
    python tools/benchmarks/fashion_mnist.py --quick  # small smoke version
"""
import argparse
import glob
import json
import logging
import os
import os.path as osp
import platform
import re
import statistics
import time
import uuid
from typing import Dict, List, Optional

import torch
from mmengine.config import Config, DictAction
from mmengine.hooks import Hook
from mmengine.logging import MMLogger
from mmengine.runner import Runner

import mim_plugins  # noqa: F401
from mim_plugins.engine.hooks import FeatureEvalHook
from mim_plugins.utils import set_max_epochs
from mim_plugins.utils.efficiency import measure_config

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ALL_METHODS = ['mae', 'bim', 'prmim', 'localmim', 'mixmim']
# transfer recipe -> (config name pattern, result key, table column)
TRANSFER = {
    'finetune': (r'.+_\d+xb\d+-coslr-\d+e_fashion-mnist\.py', 'finetune_top1',
                 'fine-tune top-1 (%)'),
    'linear': (r'.+_\d+xb\d+-linear-coslr-\d+e_fashion-mnist\.py',
               'linear_cfg_top1', 'linear-probe config top-1 (%)'),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--methods', nargs='+', default=ALL_METHODS)
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


def find_config(method: str) -> Optional[str]:
    """The method's Fashion-MNIST pre-training config, if it exists."""
    paths = sorted(
        glob.glob(
            osp.join(REPO_ROOT, 'configs', method,
                     f'{method}_*_fashion-mnist.py')))
    if len(paths) > 1:
        raise ValueError(f'several Fashion-MNIST configs for {method}: '
                         f'{paths}; keep one per method')
    return paths[0] if paths else None


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


def run_one(config: str, seed: int, args: argparse.Namespace) -> Dict:
    cfg = Config.fromfile(config)
    set_max_epochs(cfg, args.epochs)
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


def to_markdown(rows: List[Dict], meta: Dict) -> str:
    gib = 1024**3
    transfer = [(key, column) for _, key, column in TRANSFER.values()
                if any(key in row for row in rows)]
    lines = [
        f"Fashion-MNIST, {meta['epochs']} epochs, "
        f"{meta['train_images']} pre-training images, seeds {meta['seeds']};"
        f" evaluation on {meta['eval_test_samples']} test images "
        f"(kNN bank / probe: {meta['eval_train_samples']} training images); "
        f"{meta['machine']}, torch {meta['torch']}.", '',
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
        lines.append(f"| {row['method']} | {row['epochs']} | "
                     f"{row['pretrain_seconds']['mean']:.0f} | {mem} | "
                     f"{fmt(row['knn_top1'])} | {fmt(row['linear_top1'])} |" +
                     ''.join(f' {fmt(row[key]) if key in row else "-"} |'
                             for key, _ in transfer))
    return '\n'.join(lines) + '\n'


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
    MMLogger.get_instance('mmengine').setLevel(logging.WARNING)
    os.makedirs(args.out, exist_ok=True)
    rows, floor = [], []
    for method in args.methods:
        config = find_config(method)
        if config is None:
            print(f'[quality] {method}: no configs/{method}/'
                  f'{method}_*_fashion-mnist.py yet, skipped')
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
        finals = [run['curve'][-1] for run in runs]
        floor.extend(run['curve'][0] for run in runs
                     if run['curve'][0]['epoch'] == 0)
        transfer = {
            key: summarize([run[key] for run in runs])
            for _, key, _ in TRANSFER.values() if key in runs[0]
        }
        rows.append(
            dict(
                **transfer,
                method=method,
                config=osp.relpath(config, REPO_ROOT),
                epochs=args.epochs,
                batch=batch,
                peak_bytes=mem['peak_bytes_at_mem_batch'],
                pretrain_seconds=summarize(
                    [f['pretrain_seconds'] for f in finals]),
                knn_top1=summarize([f['knn_top1'] for f in finals]),
                linear_top1=summarize([f['linear_top1'] for f in finals]),
                runs=runs))
    if not rows:
        raise SystemExit('no method had a Fashion-MNIST config')
    if floor:
        rows.append(
            dict(
                method='random init',
                epochs=0,
                batch=None,
                peak_bytes=None,
                pretrain_seconds=dict(mean=0.0, std=0.0),
                knn_top1=summarize([f['knn_top1'] for f in floor]),
                linear_top1=summarize([f['linear_top1'] for f in floor]),
                runs=[]))
    meta = dict(
        epochs=args.epochs,
        seeds=args.seeds,
        train_images=args.train_samples or 60000,
        eval_train_samples=args.eval_train_samples,
        eval_test_samples=args.eval_test_samples,
        probe_epochs=args.probe_epochs,
        machine=f'{platform.machine()}, {os.cpu_count()} CPUs',
        torch=torch.__version__,
        transfer_epochs=args.transfer_epochs
        if args.finetune or args.linear else None,
        quick=args.quick)
    with open(osp.join(args.out, 'quality.json'), 'w') as f:
        json.dump(dict(meta=meta, rows=rows), f, indent=2)
    table = to_markdown(rows, meta)
    with open(osp.join(args.out, 'quality.md'), 'w') as f:
        f.write(table)
    plot(rows, osp.join(args.out, 'quality.png'))
    print(table)


if __name__ == '__main__':
    main()
