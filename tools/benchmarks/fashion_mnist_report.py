# Copyright (c) OpenMMLab. All rights reserved.
"""Report of the equal-budget benchmark: tables and curves from its runs.

Reads what ``fashion_mnist.py`` wrote into one or more output folders
(``runs/<method>_seed<k>.json``, ``costs/<method>.json``); trains nothing.
Writes into the first folder (or ``--out``):

- ``quality.json``: per method the per-seed curves and finals, their mean
  and std, the cost ratios to MAE and the time / FLOPs to MAE's final score;
- ``quality.md``: the tables;
- ``quality_time.png`` and ``quality_flops.png``: kNN and probe top-1 against
  training wall-clock and training FLOPs, the seeds' mean with a band from
  their minimum to maximum, MAE dashed.

"Time to MAE's final" is where a method's seed-mean curve first reaches the
mean of MAE's final scores (linear between evaluation points), divided by
MAE's mean training time; the same for FLOPs. Runs made on different
machines are never put on one time axis: the time columns and the time plot
are then left out (the FLOPs axis does not depend on the machine).

Example:
    python tools/benchmarks/fashion_mnist_report.py work_dirs/equal_budget
"""
import argparse
import glob
import json
import os
import os.path as osp
import statistics
from typing import Dict, List, Optional, Sequence

from mim_plugins.evaluation.baselines import BASELINES as BASELINE_NAMES
from mim_plugins.evaluation.budget import METHOD_NAMES

BASELINE = 'mae'
SCORES = (('knn_top1', 'kNN'), ('linear_top1', 'probe'))
FINAL_SCORES = SCORES + (('finetune_top1', 'low-label fine-tune'), )
# time to MAE's final kNN and probe score, as a ratio to MAE's time
TIME_TARGETS = dict(localmim=0.5, prmim=0.8, bim=1.0)
MEMORY_TARGETS = dict(bim=0.45)
# a method's images/s differing more than this between seeds means the
# machine's speed changed between the sessions that ran them
SPEED_DRIFT = 1.10
NAMES = METHOD_NAMES
ORDER = list(METHOD_NAMES)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'folders', nargs='+', help='output folders of fashion_mnist.py')
    parser.add_argument(
        '--out', help='where the report goes (default: the first folder)')
    return parser.parse_args(argv)


def load_runs(folders: Sequence[str]) -> Dict[str, List[Dict]]:
    """The finished runs by method, each seed once.

    Raises:
        ValueError: If the runs differ in protocol or a seed repeats.
    """
    runs: Dict[str, List[Dict]] = {}
    protocol = None
    for folder in folders:
        for path in sorted(glob.glob(osp.join(folder, 'runs', '*.json'))):
            with open(path) as f:
                run = json.load(f)
            # a field a run lacks reads as None (runs made before the field
            # existed)
            diff = [] if protocol is None else sorted(
                k for k in set(protocol) | set(run['protocol'])
                if protocol.get(k) != run['protocol'].get(k))
            if protocol is None:
                protocol = run['protocol']
            elif diff:
                raise ValueError(f'{path} differs from the other runs in '
                                 f'{diff}: report one protocol at a time')
            seeds = {r['seed'] for r in runs.get(run['method'], [])}
            if run['seed'] in seeds:
                raise ValueError(f'{run["method"]} seed {run["seed"]} '
                                 'appears twice')
            runs.setdefault(run['method'], []).append(run)
    if not runs:
        raise ValueError(f'no runs/*.json in {list(folders)}')
    return {
        m: sorted(r, key=lambda run: run['seed'])
        for m, r in runs.items()
    }


def load_costs(folders: Sequence[str]) -> Dict[str, Dict]:
    costs = {}
    for folder in folders:
        for path in glob.glob(osp.join(folder, 'costs', '*.json')):
            with open(path) as f:
                costs[osp.splitext(osp.basename(path))[0]] = json.load(f)
    return costs


def summarize(values: List[float]) -> Dict:
    return dict(
        mean=statistics.mean(values),
        std=statistics.stdev(values) if len(values) > 1 else 0.,
        values=values)


def mean_curve(runs: List[Dict]) -> List[Dict]:
    """Seed means (and min / max) at every evaluation point all runs have.

    Points are matched by their budget fraction; every run of one protocol
    evaluates at the same fractions.
    """
    fractions = sorted(
        set.intersection(*({p['fraction']
                            for p in run['curve']} for run in runs)))
    curve = []
    for fraction in fractions:
        points = [
            next(p for p in run['curve'] if p['fraction'] == fraction)
            for run in runs
        ]
        entry = dict(fraction=fraction)
        for key in ('seconds', 'flops', 'images') + tuple(k
                                                          for k, _ in SCORES):
            values = [p[key] for p in points]
            entry[key] = statistics.mean(values)
            entry[f'{key}_min'] = min(values)
            entry[f'{key}_max'] = max(values)
        curve.append(entry)
    return curve


def reach(curve: List[Dict], axis: str, key: str,
          target: float) -> Optional[float]:
    """Where ``curve[key]`` first reaches ``target`` along ``axis``, linear
    between evaluation points; None if it never does."""
    for i, point in enumerate(curve):
        if point[key] >= target:
            if i == 0:
                return point[axis]
            prev = curve[i - 1]
            share = (target - prev[key]) / (point[key] - prev[key])
            return prev[axis] + share * (point[axis] - prev[axis])
    return None


def single_machine(runs: Dict[str, List[Dict]]) -> bool:
    return len({(r['machine'], r['device'])
                for rs in runs.values() for r in rs}) == 1


def build_report(runs: Dict[str, List[Dict]], costs: Dict[str,
                                                          Dict]) -> Dict:
    """Per-method summaries, cost ratios and times to MAE's final."""
    same_machine = single_machine(runs)
    rows = {}
    for method, method_runs in runs.items():
        finals = [run['curve'][-1] for run in method_runs]
        inits = [run['curve'][0] for run in method_runs]
        row = dict(
            method=method,
            config=method_runs[0]['config'],
            seeds=[run['seed'] for run in method_runs],
            flops_per_image=method_runs[0]['flops_per_image'],
            train_seconds=summarize([f['seconds'] for f in finals]),
            train_flops=summarize([f['flops'] for f in finals]),
            images=summarize([f['images'] for f in finals]),
            images_per_second=summarize(
                [f['images'] / f['seconds'] for f in finals]),
            curve=mean_curve(method_runs))
        for key, _ in FINAL_SCORES:
            if all(key in f for f in finals):
                row[key] = summarize([f[key] for f in finals])
            if all(key in p and p['fraction'] == 0 for p in inits):
                row[f'init_{key}'] = summarize([p[key] for p in inits])
        if method in costs:
            row['peak_bytes'] = costs[method]['peak_bytes_at_mem_batch']
            row['mem_batch'] = costs[method]['mem_batch']
        rows[method] = row
    base = rows.get(BASELINE)
    if base is not None:
        for row in rows.values():
            add_ratios(row, base, same_machine)
    # the largest max / min images/s of one method over its seeds
    spreads = [
        max(v) / min(v) for v in (row['images_per_second']['values']
                                  for row in rows.values()) if len(v) > 1
    ]
    first = next(iter(runs.values()))[0]
    return dict(
        protocol=first['protocol'],
        # the held-out split's images (runs of one protocol share them)
        pretrain_indices=first.get('pretrain_indices'),
        val_indices=first.get('val_indices'),
        speed_spread=max(spreads, default=1.),
        machines=sorted({f"{r['machine']}; {r['device']}; torch "
                         f"{r['torch']}; {r['threads']} threads"
                         for rs in runs.values() for r in rs}),
        same_machine=same_machine,
        rows=sorted(rows.values(), key=lambda r: ORDER.index(r['method'])
                    if r['method'] in ORDER else len(ORDER)))


def add_ratios(row: Dict, base: Dict, same_machine: bool) -> None:
    row['flops_ratio'] = row['flops_per_image'] / base['flops_per_image']
    if 'peak_bytes' in row and 'peak_bytes' in base:
        row['memory_ratio'] = row['peak_bytes'] / base['peak_bytes']
    axes = [('flops', base['train_flops']['mean'])]
    if same_machine:
        axes.append(('seconds', base['train_seconds']['mean']))
    row['to_baseline_final'] = {}
    for key, _ in SCORES:
        target = base[key]['mean']
        entry = dict(target=target)
        for axis, base_total in axes:
            where = reach(row['curve'], axis, key, target)
            entry[axis] = None if where is None else where / base_total
        # the random-initialisation floor may already be there
        entry['at_init'] = row['curve'][0]['fraction'] == 0 and \
            row['curve'][0][key] >= target
        row['to_baseline_final'][key] = entry
    targets = {}
    if row['method'] in TIME_TARGETS and same_machine:
        limit = TIME_TARGETS[row['method']]
        entries = [row['to_baseline_final'][k] for k, _ in SCORES]
        # when a random network already scores MAE's final, "time to reach
        # it" says nothing about the method: the target is undetermined
        met = None if any(e['at_init'] for e in entries) else all(
            e['seconds'] is not None and e['seconds'] <= limit
            for e in entries)
        targets['time'] = dict(limit=limit, met=met)
    if row['method'] in MEMORY_TARGETS and 'memory_ratio' in row:
        limit = MEMORY_TARGETS[row['method']]
        targets['memory'] = dict(
            limit=limit, met=row['memory_ratio'] <= limit)
    if targets:
        row['targets'] = targets


def fmt(stat: Optional[Dict], digits: int = 2) -> str:
    if not stat:
        return '-'
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def fmt_ratio(value: Optional[float], at_init: bool = False) -> str:
    if value is None:
        return 'not reached'
    return f'{value:.2f}' + (' (floor)' if at_init else '')


def lr_note(proto: Dict) -> str:
    """The learning-rate scales of a sweep run ('' for the configs' own)."""
    scales = proto.get('lr_scale')
    if not scales:
        return ''
    return (' Learning rate: the config\'s times ' + ', '.join(
        f'{NAMES.get(m, m)} {s:g}' for m, s in scales.items()) + '.')


def pretrain_images(report: Dict) -> str:
    """The pre-training images of a report's runs, in words."""
    proto = report['protocol']
    if report.get('pretrain_indices'):
        n = report['pretrain_indices'][1]
        return (f'{n} (training images 0..{n - 1}; the last '
                f"{proto['val_images']} held out as validation)")
    return f"{proto['train_samples'] or 60000}"


def scored_images(report: Dict) -> str:
    """What the evaluations score: test or validation images."""
    proto = report['protocol']
    if (proto.get('split') or 'test') == 'val':
        first, stop = report['val_indices']
        return (f'{stop - first} VALIDATION images (training images '
                f'{first}..{stop - 1}; not test numbers)')
    return f"{proto['eval_test_samples']} test images"


def load_baselines(folders: Sequence[str],
                   protocol: Dict) -> Optional[Dict]:
    """The no-training baselines scored on the runs' images, if any."""
    for folder in folders:
        path = osp.join(folder, 'baselines.json')
        if not osp.isfile(path):
            continue
        with open(path) as f:
            data = json.load(f)
        # the same images and scoring as the runs, or nothing
        if all(protocol.get(k) == v for k, v in data['protocol'].items()):
            return data['scores']
    return None


def baseline_verdicts(report: Dict) -> List[str]:
    """Which methods end above each no-training baseline, on which
    measure (seed means)."""
    baselines = report.get('baselines') or {}
    if not baselines:
        return []
    lines = ['', 'Above the baselines without training (final seed mean '
             'against each):', '']
    for row in report['rows']:
        parts = []
        for name, score in baselines.items():
            above = [
                label for key, label in SCORES
                if key in row and row[key]['mean'] > score[key]
            ]
            parts.append(f"{BASELINE_NAMES.get(name, name)}: " +
                         (', '.join(above) if above else 'neither'))
        lines.append(f"- {NAMES.get(row['method'], row['method'])}: " +
                     '; '.join(parts))
    return lines


def to_markdown(report: Dict) -> str:
    proto = report['protocol']
    unit = dict(seconds='s', flops='TFLOPs', epochs='epochs')[proto['unit']]
    rows = report['rows']
    lines = [
        f"Equal budget: {proto['budget']:g} {unit} of pre-training per run "
        f"(Fashion-MNIST, {pretrain_images(report)} images); "
        f"evaluated at {proto['eval_points']} points: weighted kNN (k=20) "
        f"and linear probe on {scored_images(report)} "
        f"(bank / probe: {proto['eval_train_samples']} training images), "
        + (f"low-label fine-tune ({proto['finetune_samples']} labels, "
           f"{proto['finetune_epochs']} epochs) at the start and the end. "
           if proto['finetune_samples'] else 'no low-label fine-tune. ') +
        f"Mean ± std over seeds {sorted({s for r in rows for s in r['seeds']})}."
        f" Machine: {' | '.join(report['machines'])}." + lr_note(proto), '',
        '| method | FLOPs ratio | memory ratio | images/s | images seen '
        '| kNN top-1 (%) | probe top-1 (%) | fine-tune top-1 (%) '
        '| time to MAE\'s final kNN / probe | FLOPs to MAE\'s final kNN '
        '/ probe |', '| --- ' * 10 + '|'
    ]
    for row in rows:
        reach_ = row.get('to_baseline_final', {})

        def ratios(axis, reach_=reach_):
            if not reach_ or (axis == 'seconds'
                              and not report['same_machine']):
                return '-'
            return ' / '.join(
                fmt_ratio(reach_[k].get(axis), reach_[k]['at_init'])
                for k, _ in SCORES)

        mem = row.get('memory_ratio')
        lines.append(
            f"| {NAMES.get(row['method'], row['method'])} "
            f"| {row.get('flops_ratio', 1):.2f} "
            f"| {'-' if mem is None else f'{mem:.2f}'} "
            f"| {row['images_per_second']['mean']:.0f} "
            f"| {row['images']['mean']:.0f} "
            f"| {fmt(row.get('knn_top1'))} | {fmt(row.get('linear_top1'))} "
            f"| {fmt(row.get('finetune_top1'))} "
            f"| {ratios('seconds')} | {ratios('flops')} |")
    lines += [
        '', 'Random-initialisation floor (the same networks before '
        'training)' + (' and baselines without any network, on the same '
                       'images and protocol' if report.get('baselines') else
                       '') + ':', '', '| method | kNN top-1 (%) | probe '
        'top-1 (%) | fine-tune top-1 (%) |', '| --- | --- | --- | --- |'
    ]
    for row in rows:
        lines.append(f"| {NAMES.get(row['method'], row['method'])} | " +
                     ' | '.join(
                         fmt(row.get(f'init_{k}')) for k, _ in FINAL_SCORES) +
                     ' |')
    for name, score in (report.get('baselines') or {}).items():
        lines.append(f'| {BASELINE_NAMES.get(name, name)} '
                     f"({score['dims']} dims) | {score['knn_top1']:.2f} | "
                     f"{score['linear_top1']:.2f} | - |")
    lines += baseline_verdicts(report)
    seeds = max(len(row['seeds']) for row in rows)
    if seeds > 1:
        lines += [
            '', 'Per seed (' + ', '.join(
                str(s) for s in sorted({s for r in rows
                                        for s in r['seeds']})) + '):', '',
            '| method | images seen | kNN top-1 (%) | probe top-1 (%) '
            '| fine-tune top-1 (%) |', '| --- | --- | --- | --- | --- |'
        ]
        for row in rows:
            cells = [' / '.join(f'{v:.0f}' for v in row['images']['values'])]
            cells += [
                ' / '.join(f'{v:.2f}' for v in row[key]['values'])
                if key in row else '-' for key, _ in FINAL_SCORES
            ]
            lines.append(f"| {NAMES.get(row['method'], row['method'])} | " +
                         ' | '.join(cells) + ' |')
    if report['same_machine'] and report['speed_spread'] > SPEED_DRIFT:
        lines += [
            '', f"Throughput differed between seeds by up to "
            f"{report['speed_spread']:.2f}x for one method: the machine's "
            'speed changed between the sessions that ran them, so a seed '
            'mean mixes budgets of different work. Within one seed the '
            'methods ran back to back and compare fairly.'
        ]
    checks = [row for row in rows if 'targets' in row]
    if checks:
        lines += ['', 'Targets:', '']
        for row in checks:
            for kind, target in row['targets'].items():
                what = ('time to MAE\'s final kNN and probe'
                        if kind == 'time' else 'peak memory ratio')
                lines.append(
                    f"- {NAMES[row['method']]}: {what} <= "
                    f"{target['limit']}: " + {True: 'met', False: 'missed',
                       None: 'undetermined (the network at random '
                       'initialisation already scores MAE\'s final)'
                       }[target['met']])
    lines += [
        '', '"(floor)": the random-initialisation score already reaches '
        'MAE\'s final score; "not reached": not within the budget.'
    ]
    return '\n'.join(lines) + '\n'


def plot(report: Dict, axis: str, out_file: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    scale = 1e12 if axis == 'flops' else 1.
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for row in report['rows']:
        curve = row['curve']
        x = [p[axis] / scale for p in curve]
        style = '--' if row['method'] == BASELINE else '-'
        for ax, (key, name) in zip(axes, SCORES):
            line, = ax.plot(
                x, [p[key] for p in curve],
                style,
                marker='o',
                markersize=3,
                label=NAMES.get(row['method'], row['method']))
            ax.fill_between(
                x, [p[f'{key}_min'] for p in curve],
                [p[f'{key}_max'] for p in curve],
                color=line.get_color(),
                alpha=0.15)
            ax.set_ylabel(f'{name} top-1 (%)')
    label = ('training FLOPs (T)'
             if axis == 'flops' else 'training wall-clock (s)')
    for ax in axes:
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle('Fashion-MNIST, equal budget: seed mean, band = seed '
                 'min..max', fontsize=9)
    fig.tight_layout()
    fig.savefig(out_file, dpi=120)
    plt.close(fig)


def main(argv=None) -> Dict:
    args = parse_args(argv)
    out = args.out or args.folders[0]
    os.makedirs(out, exist_ok=True)
    report = build_report(load_runs(args.folders), load_costs(args.folders))
    report['baselines'] = load_baselines(args.folders, report['protocol'])
    with open(osp.join(out, 'quality.json'), 'w') as f:
        json.dump(report, f, indent=1)
    table = to_markdown(report)
    with open(osp.join(out, 'quality.md'), 'w') as f:
        f.write(table)
    plot(report, 'flops', osp.join(out, 'quality_flops.png'))
    if report['same_machine']:
        plot(report, 'seconds', osp.join(out, 'quality_time.png'))
    print(table)
    return report


if __name__ == '__main__':
    main()
