# Copyright (c) OpenMMLab. All rights reserved.
import json

import pytest
from helpers import REPO_ROOT, run_tool


def test_quick_quality_table(fmnist_root, tmp_path):
    out = tmp_path / 'quality'
    proc = run_tool([
        'tools/benchmarks/fashion_mnist.py', '--quick', '--methods', 'mae',
        'nosuchmethod', '--train-samples', '320', '--eval-train-samples',
        '100', '--eval-test-samples', '50', '--probe-epochs', '5',
        '--data-root', fmnist_root, '--out',
        str(out), '--cfg-options', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False'
    ],
                    timeout=900)
    assert 'nosuchmethod: no configs/nosuchmethod' in proc.stdout
    with open(out / 'quality.json') as f:
        report = json.load(f)
    mae, floor = report['rows']
    assert mae['method'] == 'mae' and floor['method'] == 'random init'
    assert mae['epochs'] == 1 and mae['batch'] == 32
    assert mae['peak_bytes'] > 0
    curve = mae['runs'][0]['curve']
    # evaluated at random init (epoch 0) and after the single epoch
    assert [p['epoch'] for p in curve] == [0, 1]
    assert curve[0]['pretrain_seconds'] < curve[1]['pretrain_seconds']
    # every point also measures how collapsed the features are
    assert all(0 < p['pc1_share'] <= 1 for p in curve)
    assert floor['knn_top1']['mean'] == curve[0]['knn_top1']
    for name in ('quality.md', 'quality.png'):
        assert (out / name).is_file()
    assert '| mae | 1 |' in (out / 'quality.md').read_text()


def test_quick_table_with_finetune_and_linear_configs(fmnist_root, tmp_path):
    """--finetune/--linear train the method's benchmark configs.

    Both start from the pre-training checkpoint and add their test top-1 to
    the table.
    """
    out = tmp_path / 'quality'
    run_tool([
        'tools/benchmarks/fashion_mnist.py', '--quick', '--methods', 'prmim',
        '--finetune', '--linear', '--batch-size', '8', '--train-samples', '80',
        '--eval-train-samples', '80', '--eval-test-samples', '32',
        '--probe-epochs', '2', '--data-root', fmnist_root, '--out',
        str(out), '--cfg-options', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False'
    ],
             timeout=900)
    with open(out / 'quality.json') as f:
        report = json.load(f)
    assert report['meta']['transfer_epochs'] == 1
    prmim, floor = report['rows']
    for key in ('finetune_top1', 'linear_cfg_top1'):
        assert 0.0 <= prmim[key]['mean'] <= 100.0
        assert key not in floor
    table = (out / 'quality.md').read_text()
    assert '| fine-tune top-1 (%) | linear-probe config top-1 (%) |' in table
    assert table.splitlines()[3].count('| --- ') == 8  # the main table
    # each run loaded the backbone from the pre-training checkpoint and
    # used its own benchmark config
    ckpt = str(out / 'prmim' / 'seed0' / 'epoch_1.pth')
    configs = dict(
        finetune='vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py',
        linear='vit-tiny-p4_1xb256-linear-coslr-10e_fashion-mnist.py')
    for recipe, config in configs.items():
        work = out / 'prmim' / 'seed0' / recipe
        assert (work / config).is_file()
        logs = list(work.glob('*/*.log'))
        assert len(logs) == 1
        assert f'load backbone. in model from: {ckpt}' in logs[0].read_text()


def load_tool():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'fashion_mnist_tool', f'{REPO_ROOT}/tools/benchmarks/fashion_mnist.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_eval_epochs_with_and_without_random_init():
    tool = load_tool()
    assert tool.eval_epochs(10, 4) == [0, 2, 4, 6, 8, 10]
    assert tool.eval_epochs(2, 2) == [0, 1, 2]
    # --no-init-eval drops only the random-init point
    assert tool.eval_epochs(2, 2, init=False) == [1, 2]
    assert tool.eval_epochs(2, 1, init=False) == [2]


def fake_run(seed, knn, probe, start=1):
    """A run record as run_one writes it; scores per epoch from ``start``."""
    return dict(
        seed=seed,
        total_seconds=10.0 * len(knn),
        curve=[
            dict(
                epoch=start + i,
                pretrain_seconds=10.0 * (start + i),
                knn_top1=k,
                linear_top1=p,
                pc1_share=0.5) for i, (k, p) in enumerate(zip(knn, probe))
        ])


def fake_report(method, runs, epochs=4, **meta):
    tool = load_tool()
    row = tool.make_row(method, f'configs/{method}/x.py', epochs, 256, 1.0,
                        runs)
    meta = dict(
        dict(
            epochs=epochs,
            seeds=[r['seed'] for r in runs],
            train_images=100,
            eval_train_samples=50,
            eval_test_samples=20,
            probe_epochs=5,
            machine='x86_64, 2 CPUs',
            device='no GPU',
            torch='2.x',
            transfer_epochs=None,
            quick=False), **meta)
    return dict(meta=meta, rows=[row])


def test_mean_curve_and_epochs_to_reach_the_baseline():
    tool = load_tool()
    runs = [
        fake_run(0, [10, 20, 30, 40], [50, 60, 70, 80]),
        fake_run(1, [20, 30, 40, 50], [52, 62, 72, 82])
    ]
    curve = tool.mean_curve(runs)
    assert [p['epoch'] for p in curve] == [1, 2, 3, 4]
    assert [p['knn_top1'] for p in curve] == [15, 25, 35, 45]
    assert [p['linear_top1'] for p in curve] == [51, 61, 71, 81]
    # the first epoch at or above the target; the initial point never counts
    assert tool.reach_epoch(curve, 'knn_top1', 25) == 2
    assert tool.reach_epoch(curve, 'knn_top1', 25.01) == 3
    assert tool.reach_epoch(curve, 'knn_top1', 46) is None
    with_init = [dict(epoch=0, knn_top1=99.0)] + curve
    assert tool.reach_epoch(with_init, 'knn_top1', 20) == 2
    # only the epochs every seed evaluated are averaged
    short = fake_run(2, [0, 0], [0, 0], start=3)
    assert [p['epoch'] for p in tool.mean_curve(runs + [short])] == [3, 4]

    mae = tool.make_row('mae', 'a.py', 4, 256, 1.0,
                        [fake_run(0, [30, 35, 30, 32], [70, 75, 72, 71.5])])
    other = tool.make_row('other', 'b.py', 4, 256, 1.0, runs)
    rows = [other, mae]
    tool.add_reach(rows, 'mae')
    reach = other['reach_baseline']
    assert (reach['baseline'], reach['knn_top1'],
            reach['linear_top1']) == ('mae', 3, 4)
    assert 'reach_baseline' not in mae
    lines = tool.curve_markdown(rows)
    assert '| other | 15.00 / 51.00 | 25.00 / 61.00 | 35.00 / 71.00 | ' \
        '45.00 / 81.00 |' in lines
    assert '- other: kNN epoch 3 of 4 (0.75x), probe epoch 4 of 4 (1.00x)' \
        in lines
    # paired by seed at epoch 2: only seed 0 has a mae run (final 32 / 71.5)
    half = other['reach_baseline']['half']
    assert half['epoch'] == 2 and half['seeds'] == [0]
    assert half['knn_top1'] == dict(gaps=[-12], ahead=0, mean=-12, std=0.0)
    assert half['linear_top1']['gaps'] == [-11.5]
    assert '- kNN: -12.00 (mean -12.00 ± 0.00; 0 of 1 seeds at or above)' \
        in lines
    # a seed not evaluated at half the epochs: no paired gaps
    late = tool.make_row('late', 'c.py', 4, 256, 1.0,
                         [fake_run(0, [1, 2], [3, 4], start=3)])
    assert tool.half_epoch_gaps(late, mae) is None
    # no baseline in the table: nothing to reach
    tool.add_reach(rows, 'nosuchmethod')
    assert not any('reach_baseline' in r for r in rows)


def test_merge_pools_seeds_of_one_protocol(tmp_path):
    tool = load_tool()
    parts = {
        'mae_s0':
        fake_report('mae', [fake_run(0, [60, 62], [70, 71])], epochs=2),
        'mae_s1':
        fake_report(
            'mae', [fake_run(1, [64, 66], [72, 73])],
            epochs=2,
            device='NVIDIA H100'),
        'other_s0':
        fake_report('other', [fake_run(0, [63, 66], [71, 75])], epochs=2),
    }
    paths = []
    for name, report in parts.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / 'quality.json').write_text(json.dumps(report))
        paths.append(str(tmp_path / name))
    out = tmp_path / 'merged'
    run_tool([
        'tools/benchmarks/fashion_mnist.py', '--merge', *paths, '--out',
        str(out)
    ],
             timeout=300)
    report = json.loads((out / 'quality.json').read_text())
    mae, other = report['rows']
    assert [r['seed'] for r in mae['runs']] == [0, 1]
    assert mae['knn_top1'] == dict(mean=64.0, std=pytest.approx(2.828427))
    assert mae['linear_top1']['mean'] == 72.0
    assert [p['knn_top1'] for p in mae['mean_curve']] == [62.0, 64.0]
    # other's mean curve (kNN 63, 66; probe 71, 75) reaches mae's final
    # means (kNN 64, probe 72) at epoch 2
    reach = other['reach_baseline']
    assert (reach['baseline'], reach['knn_top1'],
            reach['linear_top1']) == ('mae', 2, 2)
    assert report['meta']['seeds'] == [0, 1]
    assert report['meta']['device'] == 'NVIDIA H100; no GPU'
    # each pooled run keeps the device it ran on
    assert [r['device'] for r in mae['runs']] == ['no GPU', 'NVIDIA H100']
    table = (out / 'quality.md').read_text()
    assert '| mae | 2 | mixed devices |' in table
    assert '| other | 2 | 20 |' in table
    assert 'device NVIDIA H100; no GPU; torch 2.x.' in table
    assert '- other: kNN epoch 2 of 2 (1.00x), probe epoch 2 of 2' in table
    # epoch 1 of other's seed 0 (63 / 71) against mae's seed-0 final (62 / 71)
    assert 'other at epoch 1 minus mae\'s final, paired by seed [0]:' in table
    assert '- probe: +0.00 (mean +0.00 ± 0.00; 1 of 1 seeds at or above)' \
        in table
    assert (out / 'quality.png').is_file()

    # runs of another protocol or a repeated seed are refused
    odd = fake_report(
        'mae', [fake_run(2, [1, 2], [3, 4])], epochs=2, probe_epochs=50)
    with pytest.raises(ValueError, match=r'differ in probe_epochs \(5 vs 50'):
        tool.merge_reports([parts['mae_s0'], odd])
    with pytest.raises(ValueError, match='mae seed 0 appears twice'):
        tool.merge_reports([parts['mae_s0'], parts['mae_s0']])
    with pytest.raises(FileNotFoundError, match='no quality.json'):
        tool.load_report(str(tmp_path))
