# Copyright (c) OpenMMLab. All rights reserved.
"""The budget ladder of the equal-budget benchmark: one full-schedule run
per rung, resumable, read in log budget by the report."""
import json
import math
import os
import os.path as osp

import pytest
from helpers import REPO_ROOT
from test_quality_benchmark import fake_run, load


def tiny_ladder_args(root, out, *extra):
    return [
        '--budget-flops', '0.04', '--rungs', '0.25', '0.5', '1', '--methods',
        'mae', '--seeds', '0', '--train-samples', '64', '--eval-points', '1',
        '--eval-train-samples', '40', '--eval-test-samples', '20',
        '--probe-epochs', '5', '--finetune-samples', '0', '--data-root', root,
        '--out', out, '--cfg-options', 'train_dataloader.batch_size=16',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False', *extra
    ]


def test_ladder_runs_each_rung_with_its_whole_schedule(fmnist_root, tmp_path,
                                                       capsys, monkeypatch):
    monkeypatch.syspath_prepend(osp.join(REPO_ROOT, 'tools', 'benchmarks'))
    tool = load('fashion_mnist')
    out = str(tmp_path / 'ladder')
    tool.main(tiny_ladder_args(fmnist_root, out, '--no-report'))
    runs = {}
    for rung in (0.25, 0.5, 1):
        with open(osp.join(out, 'runs', f'mae_seed0_rung{rung:g}.json')) as f:
            runs[rung] = json.load(f)
    per_iter = runs[1]['flops_per_iter']
    for rung, run in runs.items():
        assert run['rung'] == rung
        assert run['protocol']['rungs'] == [0.25, 0.5, 1]
        assert run['protocol']['unit'] == 'flops'
        assert run['budget'] == pytest.approx(rung * 0.04e12)
        final = run['curve'][-1]
        # the run stops when its own budget is spent ...
        assert final['iters'] == math.ceil(rung * 0.04e12 / per_iter)
        assert final['fraction'] == 1 and final['final']
        # ... where its own cosine has reached its end value
        assert final['lr_factor'] == 0.
    # not a rung read inside a longer run: at 0.25 of the budget the
    # largest rung's schedule was still high
    assert runs[1]['curve'][0]['fraction'] == 0  # the floor, largest rung
    assert all(r['curve'][0]['fraction'] > 0 for k, r in runs.items()
               if k != 1)
    assert runs[1]['flops_per_iter'] == runs[0.25]['flops_per_iter']
    printed = capsys.readouterr().out
    assert 'mae seed 0 rung 0.25: ' in printed and 'images/s over' in printed
    # the headline rung trains first: a ladder cut short keeps it
    starts = [printed.index(f'mae seed 0 rung {r:g}: configs') for r in
              (1, 0.5, 0.25)]
    assert starts == sorted(starts)
    stamps = {
        f: os.stat(osp.join(out, 'runs', f)).st_mtime_ns
        for f in os.listdir(osp.join(out, 'runs'))
    }
    # a rerun keeps every finished rung and trains nothing
    tool.main(tiny_ladder_args(fmnist_root, out))
    printed = capsys.readouterr().out
    assert printed.count('done before, kept') == 3
    assert 'images/s over' not in printed
    assert stamps == {
        f: os.stat(osp.join(out, 'runs', f)).st_mtime_ns
        for f in os.listdir(osp.join(out, 'runs'))
    }
    # another ladder in the same folder is refused
    args = tiny_ladder_args(fmnist_root, out)
    args[args.index('0.25')] = '0.125'
    with pytest.raises(ValueError, match='rungs='):
        tool.main(args)


def test_ladder_options(capsys):
    tool = load('fashion_mnist')
    args = tool.parse_args(['--budget-flops', '40', '--rungs', '1', '0.5'])
    assert (args.unit, args.budget, args.rungs) == ('flops', 40., [0.5, 1.])
    assert tool.protocol(tool.parse_args([]))['rungs'] is None
    for bad in (['--rungs', '0'], ['--rungs', '1.5'], ['--rungs', '1', '1']):
        with pytest.raises(SystemExit):
            tool.parse_args(bad)
        assert '--rungs: distinct fractions' in capsys.readouterr().err
    # the order of the methods rotates between seeds
    methods = ['mae', 'bim', 'prmim']
    assert [tool.method_order(methods, i)
            for i in range(4)] == [['mae', 'bim', 'prmim'],
                                   ['bim', 'prmim', 'mae'],
                                   ['prmim', 'mae', 'bim'],
                                   ['mae', 'bim', 'prmim']]


def test_log_reach_by_hand():
    report = load('fashion_mnist_report')
    points = [(1., 50.), (2., 60.), (4., 70.), (8., 80.)]
    # 65 is halfway from 60 to 70: halfway from log 2 to log 4
    hit = report.log_reach(points, 65.)
    assert hit['budget'] == pytest.approx(2 * math.sqrt(2))
    assert not hit['at_lowest']
    assert report.log_reach(points, 70.)['budget'] == pytest.approx(4.)
    assert report.log_reach(points, 40.) == dict(budget=1., at_lowest=True)
    assert report.log_reach(points, 81.) is None


def test_log_reach_is_the_last_crossing():
    report = load('fashion_mnist_report')
    # the lowest rung passes 70 at floor level, the next dips below it
    points = [(1., 72.), (2., 60.), (4., 70.), (8., 80.)]
    hit = report.log_reach(points, 65.)
    assert hit['budget'] == pytest.approx(2 * math.sqrt(2))
    assert report.log_reach(points, 71.)['budget'] == pytest.approx(
        4 * 2**0.1)
    # reached once, lost at the largest rung: not reached
    assert report.log_reach([(1., 75.), (2., 60.)], 70.) is None


def ladder_run(method, seed, rung, probe, finetune, seconds_per_tflop=10.):
    """A finished rung: headline 8 TFLOPs, rungs 1/8 .. 1."""
    flops = 8e12 * rung
    curve = [
        dict(
            fraction=1.,
            final=True,
            iters=int(100 * rung),
            seconds=flops / 1e12 * seconds_per_tflop,
            flops=flops,
            images=int(1000 * rung),
            knn_top1=probe - 5,
            linear_top1=probe,
            finetune_top1=finetune)
    ]
    return dict(
        method=method,
        seed=seed,
        rung=rung,
        config=f'configs/{method}/x.py',
        flops_per_image=1e9,
        protocol=dict(
            fake_run('mae', 0, (0, 0, 0), (0, 0, 0), 1.)['protocol'],
            unit='flops',
            budget=8.,
            rungs=[0.125, 0.25, 0.5, 1.]),
        curve=curve,
        machine='m1',
        device='cpu',
        torch='2',
        threads=2)


def test_report_reads_the_ladder_in_log_budget(tmp_path):
    report = load('fashion_mnist_report')
    rungs = (0.125, 0.25, 0.5, 1.)
    runs = []
    # MAE: probe 60 / 64 / 68 / 72 over the rungs, both seeds; fine-tune 70
    # at the top
    for seed in (0, 1):
        runs += [
            ladder_run('mae', seed, r, p, f)
            for r, p, f in zip(rungs, (60, 64, 68, 72), (58, 62, 66, 70))
        ]
    # LocalMIM seed 0 reaches 72 halfway (in log) from rung 0.25 to 0.5,
    # seed 1 exactly at rung 0.5; fine-tune from below the lowest rung
    runs += [
        ladder_run('localmim', 0, r, p, 71)
        for r, p in zip(rungs, (66, 70, 74, 76))
    ]
    runs += [
        ladder_run('localmim', 1, r, p, 71)
        for r, p in zip(rungs, (66, 68, 72, 76))
    ]
    os.makedirs(tmp_path / 'bench' / 'runs')
    for run in runs:
        name = f"{run['method']}_seed{run['seed']}_rung{run['rung']:g}.json"
        with open(tmp_path / 'bench' / 'runs' / name, 'w') as f:
            json.dump(run, f)
    result = report.main([str(tmp_path / 'bench')])
    ladder = result['ladder']
    local = ladder['methods']['localmim']['reach']
    # seed means 66 / 69 / 73 / 76: 72 is reached 3/4 of the way (in log)
    # from rung 0.25 to rung 0.5 -> 0.25 * 2 ** 0.75 of MAE's 8 TFLOPs
    probe = local['linear_top1']['flops']
    assert probe['ratio'] == pytest.approx(0.25 * 2**0.75)
    assert probe['seeds'] == pytest.approx([0.25 * 2**0.5, 0.5])
    # time: both methods at 10 s per TFLOP, so the same ratio
    assert local['linear_top1']['seconds']['ratio'] == pytest.approx(0.25 *
                                                                     2**0.75)
    # the fine-tune is at MAE's final (70) from the lowest rung on
    finetune = local['finetune_top1']['flops']
    assert finetune['ratio'] == pytest.approx(0.125) and finetune['at_lowest']
    assert ladder['methods']['localmim']['target'] == dict(limit=0.5, met=True)
    # MAE reaches its own final at its own budget
    assert ladder['methods']['mae']['reach']['linear_top1']['flops'][
        'ratio'] == pytest.approx(1.)
    # the headline table reads the largest rung only
    rows = {r['method']: r for r in result['rows']}
    assert rows['mae']['linear_top1']['values'] == [72, 72]
    text = (tmp_path / 'bench' / 'quality.md').read_text()
    assert '| LocalMIM | 0.42 (0.35..0.50) | ' in text
    assert '<= 0.12' in text
    assert '- LocalMIM: <= 0.5x: met' in text
    # a ladder still running: PR-MIM has its largest rung for both seeds but
    # rung 0.5 for one only -- no reading, no verdict, until every rung is in
    for run in (ladder_run('prmim', 0, 1., 80, 80),
                ladder_run('prmim', 1, 1., 80, 80),
                ladder_run('prmim', 0, 0.5, 75, 75)):
        name = f"{run['method']}_seed{run['seed']}_rung{run['rung']:g}.json"
        with open(tmp_path / 'bench' / 'runs' / name, 'w') as f:
            json.dump(run, f)
    prmim = report.main([str(tmp_path / 'bench')])['ladder']['methods'][
        'prmim']
    assert prmim['missing'] == [0.125, 0.25, 0.5] and not prmim['reach']
    assert prmim['target'] == dict(limit=0.8, met=None)
    text = (tmp_path / 'bench' / 'quality.md').read_text()
    assert ('- PR-MIM: <= 0.8x: undetermined, rungs 0.125, 0.25, 0.5 not '
            'finished for every seed') in text
    assert '- LocalMIM: <= 0.5x: met' in text


def test_report_of_a_ladder_without_its_largest_rung(tmp_path):
    report = load('fashion_mnist_report')
    os.makedirs(tmp_path / 'runs')
    with open(tmp_path / 'runs' / 'mae_seed0_rung0.5.json', 'w') as f:
        json.dump(ladder_run('mae', 0, 0.5, 60, 60), f)
    with pytest.raises(ValueError, match="largest rung has finished"):
        report.main([str(tmp_path)])


def test_report_compares_with_mae_at_the_headline_budget(tmp_path):
    """Seed-mean differences to MAE at the largest rung, 'no difference'
    inside the seeds' ranges, and the equal-budget targets (BIM within 1
    point of MAE; BIM x LocalMIM at least BIM)."""
    report = load('fashion_mnist_report')
    os.makedirs(tmp_path / 'runs')
    scores = dict(mae=(72, 73, 74), bim=(70, 70.5, 71),
                  prmim=(71, 73.5, 76), **{'bim-localmim': (71, 72, 73)})
    for method, probes in scores.items():
        for seed, probe in enumerate(probes):
            with open(tmp_path / 'runs' / f'{method}_seed{seed}_rung1.json',
                      'w') as f:
                json.dump(ladder_run(method, seed, 1., probe, probe), f)
    report.main([str(tmp_path)])
    text = (tmp_path / 'quality.md').read_text()
    # BIM: 70.5 against 73 on probe and fine-tune, ranges apart
    assert '| BIM | -2.50 | -2.50 | -2.50 |' in text
    assert ('- BIM: within 1 point of MAE\'s probe and fine-tune at the same '
            'budget (-2.50 / -2.50): missed') in text
    # PR-MIM 73.5 against 73: inside the seeds' ranges
    assert '| PR-MIM | +0.50 (no difference' in text
    assert ('- BIM×LocalMIM: at least BIM\'s probe and fine-tune at the same '
            'budget (+1.50 / +1.50): met') in text
    # no budget read inside the headline runs: the ladder reads it
    assert '| ladder below | ladder below |' in text
