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

The baselines without training (``baselines.json``: raw pixels, LocalMIM's
HOG target) join the random-initialisation floors when they were scored on
the runs' images. For a budget ladder (``--rungs``) the main tables read the
largest rung, and the ladder's tables give every rung's final scores and
the FLOPs (and time) at which each method's seed-mean rung scores reach
MAE's final probe, kNN and fine-tune, linear in log budget between rungs
(:func:`log_reach`), with the range over the seeds.

Example:
    python tools/benchmarks/fashion_mnist_report.py work_dirs/equal_budget
"""
import argparse
import glob
import json
import math
import os
import os.path as osp
import statistics
from typing import Dict, List, Optional, Sequence

from mim_plugins.benchmarks import BASELINES as BASELINE_NAMES
from mim_plugins.benchmarks import METHOD_NAMES
from mim_plugins.benchmarks.budget_runs import COMPOSITION_NAMES

BASELINE = 'mae'
SCORES = (('knn_top1', 'kNN'), ('linear_top1', 'probe'))
FINAL_SCORES = SCORES + (('finetune_top1', 'low-label fine-tune'), )
# time to MAE's final kNN and probe score, as a ratio to MAE's time
TIME_TARGETS = dict(localmim=0.5, prmim=0.8, bim=1.0)
MEMORY_TARGETS = dict(bim=0.45)
# a method's images/s differing more than this between seeds means the
# machine's speed changed between the sessions that ran them
SPEED_DRIFT = 1.10
NAMES = {**METHOD_NAMES, **COMPOSITION_NAMES}
ORDER = list(NAMES)


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
            seen = {(r['seed'], r.get('rung'))
                    for r in runs.get(run['method'], [])}
            if (run['seed'], run.get('rung')) in seen:
                rung = run.get('rung')
                raise ValueError(f'{run["method"]} seed {run["seed"]}' +
                                 ('' if rung is None else f' rung {rung:g}')
                                 + ' appears twice')
            runs.setdefault(run['method'], []).append(run)
    if not runs:
        raise ValueError(f'no runs/*.json in {list(folders)}')
    return {
        m: sorted(r, key=lambda run: (run['seed'], run.get('rung') or 0))
        for m, r in runs.items()
    }


def headline_runs(runs: Dict[str, List[Dict]]) -> Dict[str, List[Dict]]:
    """A ladder's runs at its largest rung (the headline budget); other
    runs as they are."""
    rungs = next(iter(runs.values()))[0]['protocol'].get('rungs')
    if not rungs:
        return runs
    top = max(rungs)
    return {
        m: [r for r in rs if r.get('rung') == top]
        for m, rs in runs.items() if any(r.get('rung') == top for r in rs)
    }


def log_reach(points: List[tuple], target: float) -> Optional[Dict]:
    """The budget from which a score stays at or above ``target``.

    Early rungs can score near the random-initialisation floor and dip
    below it before features form, so a floor-level rung may already pass a
    target that lies close to the floor. The budget read is therefore the
    last crossing: from it on, every larger rung scores ``target``.

    Args:
        points (list[tuple]): ``(budget, score)`` of each rung, by budget.
        target (float): The score to reach.

    Returns:
        dict or None: ``budget`` (linear in log budget between the two rungs
        around the last crossing) and ``at_lowest`` (every rung scores
        ``target``: the budget is an upper bound); None if the largest rung
        does not score it.
    """
    if not points or points[-1][1] < target:
        return None
    i = len(points) - 1
    while i > 0 and points[i - 1][1] >= target:
        i -= 1
    if i == 0:
        return dict(budget=points[0][0], at_lowest=True)
    (low, low_score), (budget, score) = points[i - 1], points[i]
    share = (target - low_score) / (score - low_score)
    return dict(
        budget=math.exp(
            math.log(low) + share * (math.log(budget) - math.log(low))),
        at_lowest=False)


LADDER_SCORES = (('linear_top1', 'probe'), ('knn_top1', 'kNN'),
                 ('finetune_top1', 'fine-tune'))
# FLOPs to MAE's final probe and low-label fine-tune, as a ratio to MAE's
TARGETS_FLOPS = dict(localmim=0.5, prmim=0.8)


def build_ladder(runs: Dict[str, List[Dict]],
                 same_machine: bool) -> Optional[Dict]:
    """Time-to-accuracy from a budget ladder.

    Each rung is a separate run with its whole schedule in the rung's
    budget. MAE's final score is the mean over its seeds at the largest
    rung; for every method and measure the FLOPs (and, on one machine, the
    seconds) at which its seed-mean rung scores reach it are read by
    :func:`log_reach` and divided by MAE's at the largest rung. The band is
    the same read from each seed's own rungs (min..max over seeds; a seed
    that never reaches it makes the band open).
    """
    rungs = next(iter(runs.values()))[0]['protocol'].get('rungs')
    if not rungs or BASELINE not in runs:
        return None
    top = max(rungs)
    axes = ['flops'] + (['seconds'] if same_machine else [])

    def finals(method_runs, rung):
        return [r['curve'][-1] for r in method_runs if r.get('rung') == rung]

    base_top = finals(runs[BASELINE], top)
    if not base_top:
        return None
    reference = {axis: statistics.mean(f[axis] for f in base_top)
                 for axis in axes}
    methods = {}
    for method, method_runs in runs.items():
        table = []
        for rung in rungs:
            points = finals(method_runs, rung)
            if not points:
                continue
            entry = dict(rung=rung, seeds=len(points))
            for axis in axes:
                entry[axis] = statistics.mean(p[axis] for p in points)
            for key, _ in LADDER_SCORES:
                if all(key in p for p in points):
                    entry[key] = summarize([p[key] for p in points])
            table.append(entry)
        # a rung with fewer seeds than the largest one (a ladder still
        # running) would bend the curve: no reading until every rung is in
        seeds = len(finals(method_runs, top))
        missing = [r for r in rungs if len(finals(method_runs, r)) < seeds]
        reach_ = {}
        for key, _ in LADDER_SCORES:
            if missing or not all(key in f for f in base_top) or not all(
                    key in e for e in table):
                continue
            target = statistics.mean(f[key] for f in base_top)
            entry = dict(target=target)
            for axis in axes:
                mean = log_reach([(e[axis], e[key]['mean']) for e in table],
                                 target)
                per_seed = []
                for seed in sorted({r['seed'] for r in method_runs}):
                    own = sorted(
                        (r['curve'][-1][axis], r['curve'][-1][key])
                        for r in method_runs
                        if r['seed'] == seed and key in r['curve'][-1])
                    hit = log_reach(own, target)
                    per_seed.append(None if hit is None else
                                    hit['budget'] / reference[axis])
                entry[axis] = dict(
                    ratio=None if mean is None else mean['budget'] /
                    reference[axis],
                    at_lowest=bool(mean and mean['at_lowest']),
                    seeds=per_seed)
            reach_[key] = entry
        methods[method] = dict(rungs=table, reach=reach_, missing=missing)
        if method in TARGETS_FLOPS:
            limit = TARGETS_FLOPS[method]
            ratios = [
                reach_[k]['flops']['ratio']
                for k in ('linear_top1', 'finetune_top1') if k in reach_
            ]
            methods[method]['target'] = dict(
                limit=limit,
                met=None if missing else bool(ratios) and all(
                    r is not None and r <= limit for r in ratios))
    return dict(rungs=rungs, reference=reference, methods=methods)


def fmt_band(entry: Dict) -> str:
    """'0.42 (0.35-0.51)': the ratio of the seed mean and the seeds'
    range; '<=' when the lowest rung already reaches the target."""
    if entry['ratio'] is None:
        text = 'not reached'
    else:
        text = ('<= ' if entry['at_lowest'] else '') + f"{entry['ratio']:.2f}"
    seeds = entry['seeds']
    if len(seeds) > 1:
        known = [s for s in seeds if s is not None]
        low = f'{min(known):.2f}' if known else '-'
        high = ('not reached' if None in seeds else f'{max(known):.2f}')
        text += f' ({low}..{high})'
    return text


def ladder_markdown(ladder: Dict) -> List[str]:
    """The ladder's tables: scores per rung, budget to MAE's final."""
    rungs = ', '.join(f'{r:g}' for r in ladder['rungs'])
    lines = [
        '', f'Budget ladder: rungs {rungs} of the headline budget, each a '
        'separate run with its whole schedule (warm-up, cosine) in its own '
        'budget. Final scores per rung, mean ± std over seeds:', '',
        '| method | rung | TFLOPs | train seconds | probe top-1 (%) | kNN '
        'top-1 (%) | fine-tune top-1 (%) |', '| --- ' * 7 + '|'
    ]
    for method, entry in ladder['methods'].items():
        for rung in entry['rungs']:
            secs = rung.get('seconds')
            lines.append(
                f"| {NAMES.get(method, method)} | {rung['rung']:g} "
                f"| {rung['flops'] / 1e12:.3g} "
                f"| {'-' if secs is None else f'{secs:.0f}'} | " +
                ' | '.join(fmt(rung.get(k)) for k, _ in LADDER_SCORES) +
                ' |')
    axes = [a for a in ('flops', 'seconds') if a in ladder['reference']]
    for axis in axes:
        what = 'FLOPs' if axis == 'flops' else 'Training time'
        lines += [
            '', f"{what} to reach MAE's final score (MAE's seed mean at the "
            'largest rung), x MAE\'s budget there; interpolated in log '
            'budget between rungs; in brackets the seeds\' range:', '',
            '| method | probe | kNN | fine-tune |', '| --- | --- | --- | --- |'
        ]
        for method, entry in ladder['methods'].items():
            if entry.get('missing'):
                lines.append(f'| {NAMES.get(method, method)} | '
                             f"{missing_words(entry['missing'])} | - | - |")
                continue
            lines.append(f'| {NAMES.get(method, method)} | ' + ' | '.join(
                fmt_band(entry['reach'][k][axis]) if k in entry['reach']
                else '-' for k, _ in LADDER_SCORES) + ' |')
    targets = [(m, e['target']) for m, e in ladder['methods'].items()
               if 'target' in e]
    if targets:
        lines += ['', 'Targets (FLOPs to MAE\'s final probe and fine-tune):',
                  '']
        lines += [
            f"- {NAMES.get(m, m)}: <= {t['limit']}x: " +
            (f"undetermined, {missing_words(ladder['methods'][m]['missing'])}"
             if t['met'] is None else 'met' if t['met'] else 'missed')
            for m, t in targets
        ]
    return lines


def missing_words(rungs: List[float]) -> str:
    """'rungs 0.125, 0.25 not finished for every seed'."""
    return (f"rung{'s' if len(rungs) > 1 else ''} "
            f"{', '.join(f'{r:g}' for r in rungs)} not finished for every "
            'seed')


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
    # evaluated only at the start and the end, a run has no curve to read a
    # crossing from (the line between the two points is not the run's)
    curve_read = next(iter(runs.values()))[0]['protocol'].get(
        'eval_points', 2) >= 2
    if base is not None:
        for row in rows.values():
            add_ratios(row, base, same_machine, curve_read)
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


def add_ratios(row: Dict, base: Dict, same_machine: bool,
               curve_read: bool = True) -> None:
    row['flops_ratio'] = row['flops_per_image'] / base['flops_per_image']
    if 'peak_bytes' in row and 'peak_bytes' in base:
        row['memory_ratio'] = row['peak_bytes'] / base['peak_bytes']
    axes = [('flops', base['train_flops']['mean'])]
    if same_machine:
        axes.append(('seconds', base['train_seconds']['mean']))
    row['to_baseline_final'] = {}
    for key, _ in (SCORES if curve_read else ()):
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
    if row['method'] in TIME_TARGETS and same_machine and curve_read:
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
    """The recipe knobs a run turned: learning-rate scales, batch, warm-up
    ('' for the configs' own)."""
    scales = proto.get('lr_scale')
    note = ''
    if scales:
        note += (' Learning rate: the config\'s times ' + ', '.join(
            f'{NAMES.get(m, m)} {s:g}' for m, s in scales.items()) + '.')
    if proto.get('batch_size'):
        note += f" Batch {proto['batch_size']} for every method."
    if proto.get('warmup') is not None:
        note += (f" Warm-up: {proto['warmup']:g} of the budget for every "
                 'method.')
    return note


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


# at the same budget: BIM within this many points of MAE's probe and
# fine-tune; BIM x LocalMIM at least BIM's
EQUAL_BUDGET_TARGETS = dict(bim=('mae', -1.0), **{'bim-localmim': ('bim', 0.)})


def compare(row: Dict, other: Dict, key: str) -> Optional[Dict]:
    """Seed-mean difference ``row - other`` on ``key``; 'no difference'
    when the two methods' seed ranges overlap."""
    if key not in row or key not in other:
        return None
    a, b = row[key]['values'], other[key]['values']
    return dict(
        diff=row[key]['mean'] - other[key]['mean'],
        overlap=min(a) <= max(b) and min(b) <= max(a))


def equal_budget_lines(report: Dict) -> List[str]:
    """Each method against MAE at the same budget, and the targets read
    there (BIM within 1 point of MAE; BIM x LocalMIM at least BIM)."""
    rows = {row['method']: row for row in report['rows']}
    if BASELINE not in rows or len(rows[BASELINE]['seeds']) < 2:
        return []

    def words(c):
        if c is None:
            return '-'
        return f"{c['diff']:+.2f}" + (' (no difference: the seeds\' ranges '
                                      'overlap)' if c['overlap'] else '')

    lines = [
        '', "Against MAE at the same budget (seed-mean difference, points; "
        "a difference inside the seeds' ranges is no difference):", '',
        '| method | kNN | probe | fine-tune |', '| --- | --- | --- | --- |'
    ]
    for method, row in rows.items():
        if method != BASELINE:
            lines.append(f'| {NAMES.get(method, method)} | ' + ' | '.join(
                words(compare(row, rows[BASELINE], k))
                for k, _ in FINAL_SCORES) + ' |')
    targets = []
    for method, (other, margin) in EQUAL_BUDGET_TARGETS.items():
        if method not in rows or other not in rows:
            continue
        diffs = [compare(rows[method], rows[other], k)
                 for k in ('linear_top1', 'finetune_top1')]
        if None in diffs:
            continue
        verdict = ('met' if all(d['diff'] >= margin for d in diffs) else
                   'met within the seeds\' ranges' if all(
                       d['diff'] >= margin or d['overlap'] for d in diffs)
                   else 'missed')
        what = (f"within {-margin:g} point of {NAMES[other]}'s" if margin
                else f"at least {NAMES[other]}'s")
        shown = ' / '.join(f"{d['diff']:+.2f}" for d in diffs)
        targets.append(
            f'- {NAMES[method]}: {what} probe and fine-tune at the same '
            f'budget ({shown}): {verdict}')
    if targets:
        lines += ['', 'At the same budget:', ''] + targets
    return lines


def budget_words(proto: Dict, unit: str) -> str:
    """The budget of the main table's runs (a ladder's largest rung)."""
    rungs = proto.get('rungs')
    if not rungs:
        return f"{proto['budget']:g} {unit}"
    top = max(rungs)
    return (f"{proto['budget'] * top:g} {unit} (the largest rung of the "
            'ladder below)')


def to_markdown(report: Dict) -> str:
    proto = report['protocol']
    unit = dict(seconds='s', flops='TFLOPs', epochs='epochs')[proto['unit']]
    rows = report['rows']
    lines = [
        f"Equal budget: {budget_words(proto, unit)} of pre-training per run "
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
    curve_read = proto.get('eval_points', 2) >= 2  # as in build_report
    for row in rows:
        reach_ = row.get('to_baseline_final', {})

        def ratios(axis, reach_=reach_):
            if proto.get('rungs'):
                # read from full-schedule rungs, not inside this run
                return 'ladder below'
            if not curve_read:
                return 'one point: use --rungs'
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
            '| fine-tune top-1 (%) | images/s in that seed\'s sitting |',
            '| --- | --- | --- | --- | --- | --- |'
        ]
        for row in rows:
            cells = [' / '.join(f'{v:.0f}' for v in row['images']['values'])]
            cells += [
                ' / '.join(f'{v:.2f}' for v in row[key]['values'])
                if key in row else '-' for key, _ in FINAL_SCORES
            ]
            cells.append(' / '.join(
                f'{v:.0f}' for v in row['images_per_second']['values']))
            lines.append(f"| {NAMES.get(row['method'], row['method'])} | " +
                         ' | '.join(cells) + ' |')
    # under a FLOPs budget every seed does the same work, whatever the speed
    if (proto['unit'] == 'seconds' and report['same_machine']
            and report['speed_spread'] > SPEED_DRIFT):
        lines += [
            '', f"Throughput differed between seeds by up to "
            f"{report['speed_spread']:.2f}x for one method: the machine's "
            'speed changed between the sessions that ran them, so a seed '
            'mean mixes budgets of different work. Within one seed the '
            'methods ran back to back and compare fairly.'
        ]
    lines += equal_budget_lines(report)
    checks = [(row, kind, target) for row in rows
              for kind, target in row.get('targets', {}).items()
              # a ladder's targets read the budget properly, below
              if not (kind == 'time' and proto.get('rungs'))]
    if checks:
        lines += ['', 'Targets:', '']
        for row, kind, target in checks:
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
    if report.get('ladder'):
        lines += ladder_markdown(report['ladder'])
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
    runs = load_runs(args.folders)
    headline = headline_runs(runs)
    if not headline:
        raise ValueError('no run of the ladder\'s largest rung has finished '
                         'yet: rerun fashion_mnist.py to resume it')
    report = build_report(headline, load_costs(args.folders))
    report['baselines'] = load_baselines(args.folders, report['protocol'])
    report['ladder'] = build_ladder(runs, single_machine(runs))
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
