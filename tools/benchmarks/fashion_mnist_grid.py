# Copyright (c) OpenMMLab. All rights reserved.
"""The learning-rate grid of the equal-budget benchmark, and its choice.

Reads output folders of ``fashion_mnist.py`` that differ only in
``--lr-scale`` (one folder per point of the grid, every method at that
scale), prints a markdown table of each method's final scores per scale
beside its random-initialisation floor, and the scale each method takes:
the best final probe on the folders' split (kNN breaks a tie). The grid is
meant to be run on the validation split (``--split val``); the tool refuses
folders of the test split unless ``--allow-test`` says the choice is not
being made there.

Example:
    python tools/benchmarks/fashion_mnist_grid.py work_dirs/val_lr*
    # the choice, as --lr-scale items for the ladder on the test images
    python tools/benchmarks/fashion_mnist_grid.py work_dirs/val_lr* --choice
"""
import argparse
import glob
import json
import os.path as osp
import sys
from typing import Dict, Sequence

from mim_plugins.benchmarks.budget_runs import (COMPOSITION_NAMES,
                                                METHOD_NAMES)

# what must match between the grid's folders: everything but the scale
IGNORED = ('lr_scale', )
# the report's order: the methods, then the compositions
ORDER = list(METHOD_NAMES) + list(COMPOSITION_NAMES)
MEASURES = (('linear_top1', 'probe'), ('knn_top1', 'kNN'),
            ('finetune_top1', 'fine-tune'))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'folders', nargs='+', help='output folders, one per grid point')
    parser.add_argument(
        '--choice',
        action='store_true',
        help='print only the chosen scales, as METHOD=SCALE items')
    parser.add_argument(
        '--allow-test',
        action='store_true',
        help='read folders that scored the test images (for a table only: '
        'choices are made on validation)')
    return parser.parse_args(argv)


def load_grid(folders: Sequence[str],
              allow_test: bool = False) -> Dict[str, Dict[float, Dict]]:
    """``{method: {scale: run}}`` of the folders' finished runs.

    Raises:
        ValueError: If the folders differ in anything but the scale, a
            (method, scale) repeats, or they scored the test images without
            ``allow_test``.
    """
    grid: Dict[str, Dict[float, Dict]] = {}
    protocol = None
    for folder in folders:
        for path in sorted(glob.glob(osp.join(folder, 'runs', '*.json'))):
            with open(path) as f:
                run = json.load(f)
            proto = {
                k: v
                for k, v in run['protocol'].items() if k not in IGNORED
            }
            if protocol is None:
                protocol = proto
                if proto.get('split') != 'val' and not allow_test:
                    raise ValueError(
                        f'{path} scored the test images: make the choice on '
                        'validation (--val-images N --split val), or pass '
                        '--allow-test for a table')
            elif proto != protocol:
                diff = sorted(k for k in set(proto) | set(protocol)
                              if proto.get(k) != protocol.get(k))
                raise ValueError(f'{path} differs from the other runs in '
                                 f'{diff}: a grid varies the scale only')
            scales = run['protocol'].get('lr_scale') or {}
            scale = scales.get(run['method'], 1.)
            if scale in grid.get(run['method'], {}):
                raise ValueError(f"{run['method']} at x{scale:g} appears "
                                 'twice')
            grid.setdefault(run['method'], {})[scale] = run
    if not grid:
        raise ValueError(f'no runs/*.json in {list(folders)}')
    return {
        m: grid[m]
        for m in sorted(grid, key=lambda m: (m not in ORDER, ORDER.index(m)
                                             if m in ORDER else 0, m))
    }


def score(run: Dict) -> tuple:
    """What the choice ranks by: final probe, then final kNN."""
    final = run['curve'][-1]
    return tuple(final.get(k, float('-inf')) for k, _ in MEASURES[:2])


def choose(grid: Dict[str, Dict[float, Dict]]) -> Dict[str, float]:
    """Each method's scale with the best final probe (kNN breaks ties)."""
    return {
        method: max(runs, key=lambda s, runs=runs: score(runs[s]))
        for method, runs in grid.items()
    }


def to_markdown(grid: Dict[str, Dict[float, Dict]]) -> str:
    chosen = choose(grid)
    keys = [(k, n) for k, n in MEASURES if any(
        k in r['curve'][-1] for runs in grid.values() for r in runs.values())]
    lines = [
        '| method | lr scale | ' +
        ' | '.join(f'{n} top-1 (%) (floor)' for _, n in keys) + ' |',
        '| --- ' * (2 + len(keys)) + '|'
    ]
    for method, runs in grid.items():
        for scale in sorted(runs):
            final, init = runs[scale]['curve'][-1], runs[scale]['curve'][0]
            cells = []
            for key, _ in keys:
                text = f'{final[key]:.2f}' if key in final else '-'
                if key in final and key in init and init.get('fraction') == 0:
                    text += f' ({init[key]:.2f})'
                cells.append(text)
            mark = ' **chosen**' if scale == chosen[method] else ''
            lines.append(f'| {method} | x{scale:g}{mark} | ' +
                         ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def main(argv=None) -> Dict[str, float]:
    args = parse_args(argv)
    try:
        grid = load_grid(args.folders, args.allow_test)
    except ValueError as err:
        sys.exit(f'fashion_mnist_grid: {err}')
    chosen = choose(grid)
    if args.choice:
        print(' '.join(f'{m}={s:g}' for m, s in chosen.items()))
    else:
        print(to_markdown(grid))
        print('\nChosen (best final probe; kNN breaks ties): ' +
              ' '.join(f'{m}={s:g}' for m, s in chosen.items()))
    return chosen


if __name__ == '__main__':
    main()
