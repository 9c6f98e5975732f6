# Copyright (c) OpenMMLab. All rights reserved.
"""CPU demo: MAE and the four methods pre-trained for the same wall-clock.

Each method's cost-matched small config
(``configs/<algo>/<algo>_vit-mini-p4_*_fashion-mnist.py``: a ViT-Mini/4 on
32-px Fashion-MNIST whose FLOPs and memory ratios to MAE are those of the
ViT-B/16 recipes) pre-trains for ``--budget`` seconds of training
(``mim_plugins/benchmarks/budget.py``), then the demo prints one table --
per method: peak training memory, images/s, training FLOPs per image, images
seen, and kNN / linear probe / low-label fine-tune top-1 each beside the
same network at random initialisation -- and saves into ``--work-dir``:

- ``demo_results.json``: every figure of the table and the curves;
- ``accuracy_vs_time.png``: kNN and probe top-1 against training time;
- ``reconstruction_<method>.png``: test images through each method's own
  panels (BIM per block, PR-MIM kept / thrown tokens, LocalMIM per scale,
  MixMIM the mixed pair);
- ``<method>/``: the Runner's log (every INFO line) and ``final.pth``.

The console shows one line per evaluation point with the time left.
The data is read from the configs' ``data_root`` (``data/fashion-mnist``
under the working directory) or from ``--data-root``. The demo also runs
where the package is installed (``mim run mim_plugins run_demo``): the
configs are looked up next to this script, in the checkout's ``configs/``
or the installed ``mim_plugins/.mim/configs/``.

Example:
    python tools/run_demo.py  # MAE, BIM, PR-MIM, LocalMIM: about 11 minutes
    python tools/run_demo.py --methods mae bim prmim localmim mixmim
    python tools/run_demo.py --methods mae localmim --budget 300
    mim run mim_plugins run_demo --data-root /data/fashion-mnist
"""
import argparse
import json
import os
import os.path as osp
import sys
import time
import warnings
from typing import Dict, List, Optional

import torch
from mmengine.config import Config, DictAction

import mim_plugins
from mim_plugins.datasets import apply_data_root
from mim_plugins.benchmarks import METHOD_NAMES

NAMES = METHOD_NAMES
METHODS = list(METHOD_NAMES)
# MixMIM is left out by default: each of its images costs 2.95x MAE's FLOPs,
# so its 2.5 minutes would push the demo past 12 minutes on 2 cores, and it
# does not leave its floor even at 12 TFLOPs (docs/experiments/
# equal_budget.md, section 5)
DEFAULT_METHODS = ['mae', 'bim', 'prmim', 'localmim']
MEASURES = (('knn_top1', 'kNN'), ('linear_top1', 'probe'),
            ('finetune_top1', 'fine-tune'))
# a method has learned when it ends this many points above the same network
# at random initialisation: twice the standard error of a top-1 near 70 % on
# the demo's 2,000 test images (see ``standard_error``)
MARGIN = 2.
# the recipe for budgets of minutes: batch 64 with the configs' rates x0.5
# (square-root rule from 256), and per method the best of x{0.3, 1, 3} of
# that on the validation images at 12 TFLOPs
# (docs/experiments/equal_budget.md, section 5)
DEMO_LR_SCALE = ['0.5', 'localmim=1.5', 'mixmim=1.5']
FMNIST_FILES = ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte',
                't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')


def config_roots() -> list:
    """Folders holding the configs: the checkout's ``configs/`` next to
    ``tools/``, or ``mim_plugins/.mim/configs`` of an installed package."""
    roots = [
        osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs'),
        osp.join(osp.dirname(mim_plugins.__file__), '.mim', 'configs')
    ]
    return [r for r in dict.fromkeys(roots) if osp.isdir(r)]


def find_config(method: str, family: str) -> str:
    """The method's Fashion-MNIST config of ``family`` under the configs."""
    name = f'{method}_{family}-p4_1xb256-coslr-10e_fashion-mnist.py'
    for root in config_roots():
        path = osp.join(root, method, name)
        if osp.isfile(path):
            return path
    sys.exit(f'Config {method}/{name} not found in {config_roots()}.')


def check_fashion_mnist(cfg: Config) -> None:
    """Stop with a clear message when a split's IDX files are missing."""
    datasets = [cfg.train_dataloader.dataset]
    datasets += list(cfg.get('feature_eval_data', {}).values())
    for dataset in datasets:
        root = dataset.get('data_prefix') or dataset.get('data_root')
        missing = [
            f for f in FMNIST_FILES if not osp.isfile(osp.join(root, f))
        ]
        if missing:
            sys.exit(
                f'Fashion-MNIST not found: {osp.abspath(root)} lacks '
                f'{", ".join(missing)}.\nPut the four unpacked IDX files '
                f'({", ".join(FMNIST_FILES)}) there -- gunzip the .gz files '
                'of https://github.com/zalandoresearch/fashion-mnist or of '
                'the Debian package dataset-fashion-mnist '
                '(/usr/share/datasets/fashion-mnist) -- or pass '
                '--data-root DIR.')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--methods',
        nargs='+',
        default=DEFAULT_METHODS,
        choices=METHODS,
        help='methods to pre-train (default: %(default)s; mixmim is '
        'one of the choices)')
    parser.add_argument(
        '--budget',
        type=float,
        default=60.,
        help='seconds of training per method (evaluation not counted)')
    parser.add_argument(
        '--family',
        default='vit-mini',
        help='config family (default: vit-mini, the cost-matched one)')
    parser.add_argument(
        '--data-root',
        help='Fashion-MNIST folder with the four unpacked IDX files '
        "(default: the configs' data_root, data/fashion-mnist)")
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument(
        '--train-samples',
        type=int,
        default=20000,
        help='pre-train on the first N training images (0 = all 60000)')
    parser.add_argument(
        '--eval-points',
        type=int,
        default=1,
        help='kNN / probe evaluations along the budget (plus the random '
        'initialisation)')
    parser.add_argument(
        '--eval-train-samples',
        type=int,
        default=2000,
        help='training images used as kNN bank and probe training set')
    parser.add_argument(
        '--eval-test-samples',
        type=int,
        default=2000,
        help='test images scored')
    parser.add_argument('--knn-k', type=int, default=20)
    parser.add_argument(
        '--probe-epochs',
        type=int,
        default=100,
        help='linear-probe epochs on frozen features')
    parser.add_argument(
        '--finetune-samples',
        type=int,
        default=300,
        help='labelled images of the low-label fine-tune (0 skips it)')
    parser.add_argument('--finetune-epochs', type=int, default=5)
    parser.add_argument(
        '--seed', type=int, default=0, help='seed of every run')
    parser.add_argument(
        '--batch-size',
        type=int,
        default=64,
        help='pre-training batch of every method (default 64: budgets of '
        "minutes need steps more than large batches; 0: the configs' 256)")
    parser.add_argument(
        '--lr-scale',
        nargs='+',
        default=DEMO_LR_SCALE,
        metavar='[METHOD=]SCALE',
        help="the configs' learning rates times SCALE, for every method or "
        'METHOD=SCALE for one (default: ' + ' '.join(DEMO_LR_SCALE) +
        ': the square-root rule from batch 256 to 64, and each method\'s '
        'choice on the validation images)')
    parser.add_argument(
        '--warmup',
        type=float,
        default=None,
        metavar='FRACTION',
        help="warm-up over this fraction of the budget for every method "
        "(default: the configs' 0.1)")
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='overrides of every method\'s config')
    args = parser.parse_args(argv)
    if args.batch_size is not None and args.batch_size < 0:
        parser.error(f'--batch-size must be >= 1 (0: the configs\'), got '
                     f'{args.batch_size}')
    args.batch_size = args.batch_size or None
    from mim_plugins.benchmarks.budget_runs import parse_lr_scale
    try:
        args.lr_scale = parse_lr_scale(args.lr_scale)
    except ValueError as err:
        parser.error(f'--lr-scale: {err}')
    if args.warmup is not None and not 0 <= args.warmup < 1:
        parser.error(f'--warmup must be in [0, 1), got {args.warmup}')
    return args


def load_config(path: str, args: argparse.Namespace) -> Config:
    cfg = Config.fromfile(path)
    if args.data_root:
        cfg.data_root = args.data_root
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    return apply_data_root(cfg)


def progress(method: str, budget: float, start: float, total: float):
    """One console line per evaluation point, with the demo's time left."""

    def on_record(record: Dict, hook) -> None:
        scores = '  '.join(f'{name} {record[key]:.1f}'
                           for key, name in MEASURES if key in record)
        where = ('random init' if record['fraction'] == 0 else
                 f"{record['seconds']:.0f}/{budget:.0f} s, "
                 f"{record['images']} images")
        elapsed = time.time() - start
        print(f'[demo] {NAMES[method]:<12} {where:<24} {scores}   '
              f'(demo {elapsed / 60:.1f} of about {total / 60:.0f} min)',
              flush=True)

    return on_record


def save_pictures(model: torch.nn.Module, cfg: Config, method: str,
                  path: str) -> None:
    """Test images through the method's own reconstruction panels."""
    from mmengine.registry import init_default_scope

    from mim_plugins.evaluation import build_feature_eval_loaders
    from mim_plugins.visualization import (reconstruct,
                                           save_reconstruction_grid)
    init_default_scope('mmpretrain')
    loader = build_feature_eval_loaders(cfg, 1, 8, batch_size=8)['test']
    batch = model.data_preprocessor(next(iter(loader)), False)
    save_reconstruction_grid(
        reconstruct(model, batch['inputs'][:8], seed=0),
        path,
        mean=cfg.data_preprocessor.mean,
        std=cfg.data_preprocessor.std,
        title=f'{NAMES[method]}: test images after {cfg.model.type} '
        'pre-training')


def demo_baselines(args: argparse.Namespace) -> Dict:
    """Raw pixels and LocalMIM's HOG target, scored on the demo's
    evaluation images with the same kNN and probe."""
    from mim_plugins.benchmarks import console_level, score_baselines
    from mim_plugins.evaluation import build_feature_eval_loaders
    cfg = load_config(find_config('mae', args.family), args)
    localmim = load_config(find_config('localmim', args.family), args)
    with console_level():
        loaders = build_feature_eval_loaders(cfg, args.eval_train_samples,
                                             args.eval_test_samples)
        return score_baselines(
            cfg,
            loaders,
            localmim,
            knn_k=args.knn_k,
            probe_epochs=args.probe_epochs)


def standard_error(images: int, top1: float = 70.) -> float:
    """Binomial standard error, in points, of a top-1 (%) on ``images``."""
    return 100 * (top1 / 100 * (1 - top1 / 100) / images)**0.5


def table(rows: List[Dict], budget: float,
          baselines: Optional[Dict] = None) -> str:
    gib = 1024**3
    head = ('| method | peak mem (GiB) @ batch | images/s | train GFLOPs '
            '/ image | images seen | kNN top-1 (floor) | probe top-1 '
            '(floor) | fine-tune top-1 (floor) |')
    lines = [head, '|' + ' --- |' * 8]
    for row in rows:
        final, init = row['curve'][-1], row['curve'][0]
        cells = [
            NAMES[row['method']],
            f"{row['peak_bytes'] / gib:.2f} @ {row['batch_size']}",
            f"{final['images'] / final['seconds']:.0f}",
            f"{row['flops_per_image'] / 1e9:.3f}", f"{final['images']}"
        ]
        for key, _ in MEASURES:
            cells.append(f'{final[key]:.1f} ({init[key]:.1f})' if key in
                         final and key in init else '-')
        lines.append('| ' + ' | '.join(cells) + ' |')
    from mim_plugins.benchmarks import BASELINES
    for name, score in (baselines or {}).items():
        lines.append(f'| {BASELINES[name]} ({score["dims"]} dims), no '
                     'training | - | - | - | - | '
                     f"{score['knn_top1']:.1f} | {score['linear_top1']:.1f} "
                     '| - |')
    notes = []
    for row in rows:
        final, init = row['curve'][-1], row['curve'][0]
        above = [
            f'{name} (+{final[key] - init[key]:.1f})' for key, name in MEASURES
            if key in final and key in init
            and final[key] - init[key] >= MARGIN
        ]
        beats = [
            f"{BASELINES[name]} on {'/'.join(n for k, n in MEASURES[:2] if final[k] > score[k])}"  # noqa: E501
            for name, score in (baselines or {}).items()
            if any(final[k] > score[k] for k, _ in MEASURES[:2])
        ]
        notes.append(f"- {NAMES[row['method']]}: " + (
            f'{MARGIN:g}+ points above its random-init floor on '
            f"{', '.join(above)}." if above else
            f'NOT {MARGIN:g} points above its random-init floor on any '
            f'measure after {budget:g} s of training.') +
            ((' Above ' + '; '.join(beats) + '.' if beats else
              ' Above no baseline without training.') if baselines else ''))
    return '\n'.join(lines + [''] + notes)


def main(argv=None) -> None:
    args = parse_args(argv)
    warnings.filterwarnings('ignore', message='The given NumPy array')
    from mim_plugins.benchmarks import measure_config, train_for_budget
    os.makedirs(args.work_dir, exist_ok=True)
    configs = {m: find_config(m, args.family) for m in args.methods}
    for path in configs.values():
        check_fashion_mnist(load_config(path, args))
    start = time.time()
    # a planning estimate for the progress lines: training plus evaluation
    total = len(args.methods) * (args.budget + 90)
    print(f'[demo] {len(args.methods)} methods x {args.budget:g} s of '
          f'training on Fashion-MNIST; logs and checkpoints in '
          f'{args.work_dir}/<method>/')
    rows = []
    for method in args.methods:
        run = train_for_budget(
            configs[method],
            args.budget,
            unit='seconds',
            seed=args.seed,
            work_dir=osp.join(args.work_dir, method),
            train_samples=args.train_samples,
            data_root=args.data_root,
            cfg_options=args.cfg_options,
            lr_scale=args.lr_scale[method],
            batch_size=args.batch_size,
            warmup=args.warmup,
            eval_points=args.eval_points,
            eval_train_samples=args.eval_train_samples,
            eval_test_samples=args.eval_test_samples,
            knn_k=args.knn_k,
            probe_epochs=args.probe_epochs,
            finetune_samples=args.finetune_samples,
            finetune_epochs=args.finetune_epochs,
            on_record=progress(method, args.budget, start, total))
        model = run.pop('model')
        cfg = load_config(configs[method], args)
        png = osp.join(args.work_dir, f'reconstruction_{method}.png')
        save_pictures(model, cfg, method, png)
        # tensor sizes, measured on two small batches and extrapolated to
        # the config's batch: not a matter of machine load
        memory = measure_config(
            configs[method],
            batch_size=8,
            mem_batch=run['batch_size'],
            iters=1)
        run.update(
            method=method,
            peak_bytes=memory['peak_bytes_at_mem_batch'],
            reconstruction_png=png)
        run['config'] = configs[method]
        rows.append(run)
    baselines = demo_baselines(args)
    plot_curves(rows, osp.join(args.work_dir, 'accuracy_vs_time.png'))
    results = dict(
        budget_seconds=args.budget,
        train_samples=args.train_samples,
        eval_train_samples=args.eval_train_samples,
        eval_test_samples=args.eval_test_samples,
        finetune_samples=args.finetune_samples,
        finetune_epochs=args.finetune_epochs,
        seed=args.seed,
        # the recipe knobs, the same for every method (None: the configs')
        batch_size=args.batch_size,
        lr_scale=args.lr_scale,
        warmup=args.warmup,
        demo_seconds=time.time() - start,
        baselines=baselines,
        runs=rows)
    with open(osp.join(args.work_dir, 'demo_results.json'), 'w') as f:
        json.dump(results, f, indent=1)
    print(f'\nFashion-MNIST, {args.budget:g} s of training per method '
          f'(seed {args.seed}); top-1 (%) on {args.eval_test_samples} test '
          f'images, kNN bank / probe {args.eval_train_samples} images, '
          f'fine-tune {args.finetune_samples} labels; in brackets the same '
          'network at random initialisation. One top-1 near 70 % on '
          f'{args.eval_test_samples} images has a standard error of '
          f'{standard_error(args.eval_test_samples):.1f} points: a method '
          f'counts as learned {MARGIN:g}+ points above its floor.\n')
    print(table(rows, args.budget, baselines))
    print(f'\nPlots: {args.work_dir}/accuracy_vs_time.png, '
          f'{args.work_dir}/reconstruction_<method>.png; all figures: '
          f'{args.work_dir}/demo_results.json')


def plot_curves(rows: List[Dict], path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for row in rows:
        x = [p['seconds'] for p in row['curve']]
        style = '--' if row['method'] == 'mae' else '-'
        for ax, (key, name) in zip(axes, MEASURES[:2]):
            ax.plot(
                x, [p[key] for p in row['curve']],
                style,
                marker='o',
                label=NAMES[row['method']])
            ax.set_ylabel(f'{name} top-1 (%)')
    for ax in axes:
        ax.set_xlabel('training wall-clock (s)')
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == '__main__':
    main()
