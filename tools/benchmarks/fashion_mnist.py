# Copyright (c) OpenMMLab. All rights reserved.
"""Equal-budget quality benchmark on Fashion-MNIST: MAE and the methods.

Every method's cost-matched small config
(``configs/<algo>/<algo>_vit-mini-p4_*_fashion-mnist.py``, whose FLOPs and
memory ratios to MAE are those of the ViT-B/16 recipes) is pre-trained for
the same budget -- wall-clock seconds of training (default), training FLOPs
or epochs -- and scored at ``--eval-points`` fractions of it: weighted kNN
and a linear probe on frozen features, and a low-label fine-tune at the
start (random-initialisation floor) and the end (``mim_plugins/benchmarks/
budget.py``). Evaluation time is kept out of the budget.

Each (method, seed) run is written to ``OUT/runs/<method>_seed<k>.json`` as
soon as it ends; a rerun with the same protocol skips the finished ones, so
an interrupted benchmark resumes where it stopped. Each method's peak
training memory is measured once (``OUT/costs/<method>.json``). The report
step (``fashion_mnist_report.py``, run at the end unless ``--no-report``)
reads these files and writes ``quality.json``, ``quality.md`` and the PNG
curves.

Runs go seed by seed (all methods with seed 0 first), so a partial run has
every method; the methods' order rotates from seed to seed, so that no
method always runs first in a sitting whose speed drifts, and each run
prints its images/s. Wall-clock budgets are only comparable on one quiet
machine: run nothing else meanwhile. FLOPs budgets (``--unit flops``) do not
depend on the machine.

``--val-images N`` holds the last N training images out as a validation
split (nothing else the run learns from comes from them) and ``--split``
picks what is scored: ``val`` for every choice, ``test`` for the reported
numbers. ``--rungs`` makes a budget ladder: one separate run per fraction
of ``--budget`` (``--budget-flops X``: ``--unit flops --budget X``), each
with its whole schedule in its own budget, from which the report reads the
budget each method needs to reach MAE's final score. Raw pixels and
LocalMIM's HOG target are scored on the same images (``OUT/baselines.json``,
``mim_plugins/benchmarks/baselines.py``).

Example:
    python tools/benchmarks/fashion_mnist.py  # default: ~1.5 h on 2 CPU cores
    python tools/benchmarks/fashion_mnist.py --unit flops --budget 13.5
    python tools/benchmarks/fashion_mnist.py --methods mae localmim \
        --seeds 0 --budget 60 --out work_dirs/equal_budget_quick
    # a learning-rate sweep point: every method at 3x its config's lr
    python tools/benchmarks/fashion_mnist.py --lr-scale 3 \
        --out work_dirs/equal_budget_lr3
    # the same on validation images held out of the training set
    python tools/benchmarks/fashion_mnist.py --lr-scale 3 \
        --val-images 10000 --split val --out work_dirs/val_lr3
    # a FLOPs ladder: 6, 12, 24 and 48 TFLOPs per (method, seed)
    python tools/benchmarks/fashion_mnist.py --budget-flops 48 \
        --rungs 0.125 0.25 0.5 1 --val-images 10000 --split test \
        --eval-points 1 --out work_dirs/ladder
"""
import argparse
import glob
import json
import os
import os.path as osp
import sys
import time
import warnings
from typing import Dict, Optional

from mmengine.config import DictAction

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ALL_METHODS = ['mae', 'bim', 'prmim', 'localmim', 'mixmim']
# compositions run only when named in --methods, by their config folder
COMPOSITIONS = {'bim-localmim': 'localmim'}
# --budget without a value: what the default run spends per (method, seed)
DEFAULT_BUDGET = dict(seconds=180., flops=13.5, epochs=1.)
# --budget is read in these units
UNIT_SCALE = dict(seconds=1., flops=1e12, epochs=1.)
# fields of a run that must agree for it to be reused or compared
PROTOCOL_KEYS = ('unit', 'budget', 'train_samples', 'eval_points',
                 'eval_train_samples', 'eval_test_samples', 'probe_epochs',
                 'finetune_samples', 'finetune_epochs', 'cfg_options',
                 'lr_scale', 'split', 'val_images', 'rungs', 'batch_size',
                 'warmup')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--methods', nargs='+', default=ALL_METHODS)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument(
        '--unit',
        choices=tuple(DEFAULT_BUDGET),
        default='seconds',
        help='what the methods get equally: seconds of training, training '
        'FLOPs or epochs (default: seconds)')
    parser.add_argument(
        '--budget',
        type=float,
        default=None,
        help='per run, in --unit (FLOPs in TFLOPs); default '
        f'{DEFAULT_BUDGET}')
    parser.add_argument(
        '--budget-flops',
        type=float,
        default=None,
        metavar='TFLOPS',
        help='shorthand for --unit flops --budget TFLOPS: the headline '
        'budget of a FLOPs ladder')
    parser.add_argument(
        '--rungs',
        type=float,
        nargs='+',
        default=None,
        metavar='FRACTION',
        help='a budget ladder: one separate full-schedule run per fraction '
        'of --budget (e.g. 0.125 0.25 0.5 1), its warm-up and cosine fitted '
        'to that rung; the report reads the budget at which each method '
        'reaches MAE\'s final score of the largest rung')
    parser.add_argument(
        '--family',
        default='vit-mini',
        help='config family: configs/<algo>/<algo>_<family>-*_fashion-'
        'mnist.py (default: vit-mini, the cost-matched one)')
    parser.add_argument(
        '--train-samples',
        type=int,
        default=0,
        help='pre-train on the first N training images (0 = all 60000)')
    parser.add_argument(
        '--val-images',
        type=int,
        default=0,
        help='hold out the last N training images as a validation split '
        '(e.g. 10000): pre-training and every labelled image of the '
        'evaluation come from before them (default 0: none held out, the '
        'protocol of the recorded runs)')
    parser.add_argument(
        '--split',
        choices=('val', 'test'),
        default='test',
        help='what is scored: the validation images (make every choice '
        'here) or the test images (the reported numbers); runs of the two '
        'never pool')
    parser.add_argument('--eval-points', type=int, default=6)
    parser.add_argument('--eval-train-samples', type=int, default=5000)
    parser.add_argument('--eval-test-samples', type=int, default=2000)
    parser.add_argument('--probe-epochs', type=int, default=100)
    parser.add_argument(
        '--finetune-samples',
        type=int,
        default=600,
        help='labelled images of the low-label fine-tune (600 = 1%% of the '
        'training labels; 0 skips it)')
    parser.add_argument('--finetune-epochs', type=int, default=8)
    parser.add_argument('--data-root', default=None)
    parser.add_argument('--out', default='work_dirs/equal_budget')
    parser.add_argument(
        '--baselines-only',
        action='store_true',
        help='train nothing: score raw pixels and LocalMIM\'s HOG target on '
        'the protocol\'s images (OUT/baselines.json) and print them')
    parser.add_argument(
        '--no-report',
        action='store_true',
        help='only train; run fashion_mnist_report.py later')
    parser.add_argument(
        '--lr-scale',
        nargs='+',
        default=['1'],
        metavar='[METHOD=]SCALE',
        help='multiply the configs\' learning rates: one SCALE for every '
        'method, and/or METHOD=SCALE for one (e.g. "3 localmim=1")')
    parser.add_argument(
        '--batch-size',
        type=int,
        default=None,
        help='pre-training batch of every method alike (default: the '
        'configs\' 256); the learning rate is not rescaled, give '
        '--lr-scale for that (e.g. 0.5 at batch 64 by the square-root rule)')
    parser.add_argument(
        '--warmup',
        type=float,
        default=None,
        metavar='FRACTION',
        help='linear warm-up over this fraction of each run\'s budget, for '
        'every method alike (default: the configs\' 0.1)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='overrides of every method\'s config')
    args = parser.parse_args(argv)
    if args.batch_size is not None and args.batch_size < 1:
        parser.error(f'--batch-size must be >= 1, got {args.batch_size}')
    if args.warmup is not None and not 0 <= args.warmup < 1:
        parser.error(f'--warmup must be in [0, 1), got {args.warmup}')
    if args.budget_flops is not None:
        if args.budget is not None or args.unit not in ('flops', 'seconds'):
            parser.error('--budget-flops is --unit flops --budget X: give '
                         'one or the other')
        args.unit, args.budget = 'flops', args.budget_flops
    if args.rungs is not None:
        if any(not 0 < r <= 1 for r in args.rungs) or len(set(
                args.rungs)) != len(args.rungs):
            parser.error('--rungs: distinct fractions of --budget in (0, 1], '
                         f'got {args.rungs}')
        args.rungs = sorted(args.rungs)
    if args.budget is None:
        args.budget = DEFAULT_BUDGET[args.unit]
    if args.budget <= 0:
        parser.error(f'--budget must be > 0, got {args.budget}')
    if args.val_images < 0:
        parser.error(f'--val-images must be >= 0, got {args.val_images}')
    if args.split == 'val' and not args.val_images:
        parser.error('--split val scores images held out of the training '
                     'set: give --val-images N (e.g. 10000)')
    known = ALL_METHODS + list(COMPOSITIONS)
    unknown = sorted(set(args.methods) - set(known))
    if unknown:
        parser.error(f'--methods: unknown {unknown}; choose from {known}')
    from mim_plugins.benchmarks.budget_runs import parse_lr_scale
    try:
        args.lr_scale = parse_lr_scale(args.lr_scale, args.methods)
    except ValueError as err:
        parser.error(f'--lr-scale: {err}')
    return args


def find_config(method: str, family: str = 'vit-mini') -> Optional[str]:
    """The method's Fashion-MNIST pre-training config of one family."""
    paths = sorted(
        glob.glob(
            osp.join(REPO_ROOT, 'configs', COMPOSITIONS.get(method, method),
                     f'{method}_{family}-*_fashion-mnist.py')))
    if len(paths) > 1:
        raise ValueError(f'several {family} Fashion-MNIST configs for '
                         f'{method}: {paths}; keep one per method')
    return paths[0] if paths else None


def protocol(args: argparse.Namespace) -> Dict:
    """What two runs must share to be reused or compared."""
    return dict(
        unit=args.unit,
        budget=args.budget,
        train_samples=args.train_samples,
        eval_points=args.eval_points,
        eval_train_samples=args.eval_train_samples,
        eval_test_samples=args.eval_test_samples,
        probe_epochs=args.probe_epochs,
        finetune_samples=args.finetune_samples,
        finetune_epochs=args.finetune_epochs,
        cfg_options=args.cfg_options or None,
        # None when every method keeps its config's lr (as runs made before
        # the flag existed record it)
        lr_scale=None if set(args.lr_scale.values()) == {1.} else
        args.lr_scale,
        # None for the test split with nothing held out (as runs made
        # before the validation split existed record it)
        split=None if args.split == 'test' and not args.val_images else
        args.split,
        val_images=args.val_images or None,
        # None for one run per (method, seed) at the budget
        rungs=args.rungs,
        # None: the configs' own
        batch_size=args.batch_size,
        warmup=args.warmup)


def run_path(out: str,
             method: str,
             seed: int,
             rung: Optional[float] = None) -> str:
    """Where a finished run is kept; a ladder's rungs each have one."""
    tail = '' if rung is None else f'_rung{rung:g}'
    return osp.join(out, 'runs', f'{method}_seed{seed}{tail}.json')


def method_order(methods, seed_index: int) -> list:
    """The methods rotated by the seed's position: on a machine whose
    speed drifts within a sitting, no method always runs first."""
    shift = seed_index % len(methods)
    return list(methods[shift:]) + list(methods[:shift])


def finished(path: str, expected: Dict) -> bool:
    """Whether ``path`` holds a finished run of the same protocol.

    Raises:
        ValueError: If it holds a run of another protocol (mixing them in
            one table would compare unequal budgets).
    """
    if not osp.isfile(path):
        return False
    with open(path) as f:
        run = json.load(f)
    for key in PROTOCOL_KEYS:
        if run['protocol'].get(key) != expected.get(key):
            raise ValueError(
                f'{path} was run with {key}={run["protocol"].get(key)!r}, '
                f'this run asks for {expected.get(key)!r}: use another --out '
                'or the same settings')
    return True


def write_json(path: str, data: Dict) -> None:
    """Write atomically: an interrupted write leaves no half file."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


def measure_costs(config: str, out: str, method: str) -> None:
    """Peak training memory at the config's batch (tensor sizes, so not
    machine-dependent), once per method."""
    path = osp.join(out, 'costs', f'{method}.json')
    if osp.isfile(path):
        return
    from mim_plugins.benchmarks import console_level, measure_config
    with console_level():  # the model build's INFO lines stay off screen
        record = measure_config(config, batch_size=16, iters=1)
    write_json(path, {
        k: record[k]
        for k in ('config', 'flops_per_image', 'peak_bytes_at_mem_batch',
                  'peak_bytes_at_mem_batch_source', 'mem_batch',
                  'params_encoder')
    })


# protocol fields the baselines depend on (the images and the scoring)
BASELINE_KEYS = ('train_samples', 'eval_train_samples', 'eval_test_samples',
                 'probe_epochs', 'split', 'val_images')


def measure_baselines(args: argparse.Namespace, expected: Dict) -> None:
    """Raw pixels and LocalMIM's HOG target scored like the encoders, on
    the same images (``OUT/baselines.json``), once per protocol."""
    path = osp.join(args.out, 'baselines.json')
    wanted = {k: expected.get(k) for k in BASELINE_KEYS}
    if osp.isfile(path):
        with open(path) as f:
            done = json.load(f)
        if done['protocol'] == wanted:
            print_baselines(done['scores'])
            return
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mim_plugins.datasets import apply_data_root
    from mim_plugins.benchmarks import console_level, score_baselines
    from mim_plugins.evaluation.feature_eval import build_feature_eval_loaders
    cfg = Config.fromfile(find_config('mae', args.family))
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.data_root:
        cfg.data_root = args.data_root
    apply_data_root(cfg)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    localmim = find_config('localmim', args.family)
    with console_level():
        loaders = build_feature_eval_loaders(
            cfg,
            args.eval_train_samples,
            args.eval_test_samples,
            split=args.split,
            val_images=args.val_images)
        scores = score_baselines(
            cfg,
            loaders,
            Config.fromfile(localmim) if localmim else None,
            probe_epochs=args.probe_epochs)
    print_baselines(scores)
    write_json(path, dict(protocol=wanted, scores=scores))


def print_baselines(scores: Dict) -> None:
    print('[equal-budget] without training: ' + ', '.join(
        f"{name} kNN {s['knn_top1']:.2f} probe {s['linear_top1']:.2f}"
        for name, s in scores.items()))


def progress_line(name: str, unit: str, budget: float):
    """A console callback: one line per evaluation point."""
    start = time.time()

    def on_record(record: Dict, hook) -> None:
        spent = hook.progress
        scores = ' '.join(f'{name} {record[key]:.2f}'
                          for key, name in (('knn_top1', 'kNN'),
                                            ('linear_top1', 'probe'),
                                            ('finetune_top1', 'fine-tune'))
                          if key in record)
        elapsed = time.time() - start
        left = (f', about {elapsed / spent * (1 - spent):.0f} s left'
                if 0 < spent < 1 else '')
        print(f'[equal-budget] {name}: {spent:4.0%} of '
              f'{budget:g} {unit}  {scores}  (run {elapsed:.0f} s{left})',
              flush=True)

    return on_record


def run_one(args: argparse.Namespace, expected: Dict, config: str,
            method: str, seed: int, rung: Optional[float],
            train_for_budget) -> None:
    """Train and score one (method, seed[, rung]) unless it is done."""
    path = run_path(args.out, method, seed, rung)
    name = f'{method} seed {seed}' + ('' if rung is None else
                                      f' rung {rung:g}')
    if finished(path, expected):
        print(f'[equal-budget] {name}: done before, kept ({path})')
        return
    print(f'[equal-budget] {name}: {osp.relpath(config, REPO_ROOT)}')
    budget = args.budget * (1. if rung is None else rung)
    run = train_for_budget(
        config,
        budget * UNIT_SCALE[args.unit],
        unit=args.unit,
        seed=seed,
        work_dir=osp.join(args.out, 'work',
                          osp.splitext(osp.basename(path))[0]),
        train_samples=args.train_samples,
        data_root=args.data_root,
        cfg_options=args.cfg_options,
        lr_scale=args.lr_scale[method],
        batch_size=args.batch_size,
        warmup=args.warmup,
        eval_points=args.eval_points,
        eval_train_samples=args.eval_train_samples,
        eval_test_samples=args.eval_test_samples,
        probe_epochs=args.probe_epochs,
        finetune_samples=args.finetune_samples,
        finetune_epochs=args.finetune_epochs,
        split=args.split,
        val_images=args.val_images,
        # the random-initialisation floor once per (method, seed): on the
        # largest rung
        eval_init=rung is None or rung == max(args.rungs),
        on_record=progress_line(name, args.unit, budget))
    run.pop('model')
    run.update(
        method=method,
        config=osp.relpath(config, REPO_ROOT),
        protocol=expected,
        rung=rung)
    final = run['curve'][-1]
    # the machine's speed in this sitting, beside the run's scores
    print(f"[equal-budget] {name}: {final['images'] / final['seconds']:.0f} "
          f"images/s over {final['seconds']:.0f} s, {final['iters']} steps")
    write_json(path, run)


def main(argv=None) -> None:
    sys.path.insert(0, REPO_ROOT)  # this checkout's package, also for args
    args = parse_args(argv)
    warnings.filterwarnings('ignore', message='The given NumPy array')
    import mim_plugins  # noqa: F401
    from mim_plugins.benchmarks import train_for_budget
    expected = protocol(args)
    configs = {}
    for method in args.methods:
        config = find_config(method, args.family)
        if config is None:
            raise SystemExit(f'{method}: no configs/{method}/{method}_'
                             f'{args.family}-*_fashion-mnist.py')
        configs[method] = config
    if args.baselines_only:
        measure_baselines(args, expected)
        return
    # a folder holds one protocol: refuse before training anything
    for path in sorted(glob.glob(osp.join(args.out, 'runs', '*.json'))):
        finished(path, expected)
    # the headline rung first, for every seed and method: a ladder cut short
    # still holds the equal-FLOPs table, and a rerun adds the smaller rungs
    for rung in sorted(args.rungs, reverse=True) if args.rungs else [None]:
        for index, seed in enumerate(args.seeds):
            for method in method_order(args.methods, index):
                run_one(args, expected, configs[method], method, seed, rung,
                        train_for_budget)
    for method in args.methods:
        measure_costs(configs[method], args.out, method)
    measure_baselines(args, expected)
    if not args.no_report:
        from fashion_mnist_report import main as report
        report([args.out])


if __name__ == '__main__':
    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
    main()
