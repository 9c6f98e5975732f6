# Copyright (c) OpenMMLab. All rights reserved.
"""The equal-budget benchmark: runner (fashion_mnist.py) and report
(fashion_mnist_report.py)."""
import importlib.util
import json
import os
import os.path as osp

import pytest
from helpers import REPO_ROOT


def load(name):
    path = osp.join(REPO_ROOT, 'tools', 'benchmarks', f'{name}.py')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_args(root, out, *extra):
    return [
        '--unit', 'epochs', '--budget', '1', '--train-samples', '32',
        '--eval-points', '1', '--eval-train-samples', '40',
        '--eval-test-samples', '20', '--probe-epochs', '5',
        '--finetune-samples', '0', '--data-root', root, '--out', out,
        '--cfg-options', 'train_dataloader.batch_size=16',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False', *extra
    ]


def test_runner_resumes_and_keeps_one_protocol(fmnist_root, tmp_path,
                                               capsys, monkeypatch):
    monkeypatch.syspath_prepend(osp.join(REPO_ROOT, 'tools', 'benchmarks'))
    tool = load('fashion_mnist')
    out = str(tmp_path / 'bench')
    tool.main(
        tiny_args(fmnist_root, out) +
        ['--methods', 'mae', 'prmim', '--seeds', '0'])
    for name in ('runs/mae_seed0.json', 'runs/prmim_seed0.json',
                 'costs/mae.json', 'costs/prmim.json', 'baselines.json',
                 'quality.json',
                 'quality.md', 'quality_flops.png', 'quality_time.png'):
        assert osp.isfile(osp.join(out, name)), name
    with open(osp.join(out, 'runs', 'prmim_seed0.json')) as f:
        run = json.load(f)
    assert run['config'] == ('configs/prmim/prmim_vit-mini-p4_1xb256-'
                             'coslr-10e_fashion-mnist.py')
    assert [p['iters'] for p in run['curve']] == [0, 2]
    assert run['protocol']['unit'] == 'epochs'
    with open(osp.join(out, 'baselines.json')) as f:
        baselines = json.load(f)
    # pixels and LocalMIM's HOG, on the runs' 40 / 20 images
    assert set(baselines['scores']) == {'pixels', 'hog_mean', 'hog_patches'}
    assert baselines['protocol']['eval_test_samples'] == 20
    assert {'machine', 'device', 'torch', 'threads'} <= set(run)
    first = os.stat(osp.join(out, 'runs', 'mae_seed0.json')).st_mtime_ns
    capsys.readouterr()

    # a rerun keeps the finished run and adds the missing seed
    tool.main(
        tiny_args(fmnist_root, out) + ['--methods', 'mae', '--seeds', '0', '1'])
    printed = capsys.readouterr().out
    assert 'mae seed 0: done before, kept' in printed
    assert os.stat(osp.join(out, 'runs',
                            'mae_seed0.json')).st_mtime_ns == first
    assert osp.isfile(osp.join(out, 'runs', 'mae_seed1.json'))
    with open(osp.join(out, 'quality.json')) as f:
        report = json.load(f)
    mae = next(r for r in report['rows'] if r['method'] == 'mae')
    assert mae['seeds'] == [0, 1]
    assert len(mae['knn_top1']['values']) == 2

    # another protocol in the same folder is refused, naming the field
    with pytest.raises(ValueError, match='budget=1.0.*2.0'):
        tool.main(
            tiny_args(fmnist_root, out) +
            ['--methods', 'mae', '--seeds', '0', '--budget', '2'])
    with pytest.raises(ValueError, match='lr_scale=None'):
        tool.main(
            tiny_args(fmnist_root, out) +
            ['--methods', 'mae', '--seeds', '0', '--lr-scale', '2'])


def test_runner_lr_scale(capsys):
    tool = load('fashion_mnist')
    scales = tool.parse_args(['--lr-scale', 'localmim=0.5', '2']).lr_scale
    # a METHOD=SCALE item wins over a bare SCALE in either order
    assert scales == dict(mae=2., bim=2., prmim=2., localmim=0.5, mixmim=2.)
    assert tool.parse_args(['--lr-scale', '2', 'localmim=0.5'
                            ]).lr_scale == scales
    assert tool.parse_args([]).lr_scale == dict.fromkeys(
        tool.ALL_METHODS, 1.)
    # the configs' own learning rates leave the protocol as runs made
    # before the flag existed recorded it
    assert tool.protocol(tool.parse_args([]))['lr_scale'] is None
    assert tool.protocol(tool.parse_args(['--lr-scale',
                                          'mae=3']))['lr_scale']['mae'] == 3
    # a composition's scale is recorded when an item names it, so runners
    # that share out one folder's methods share its protocol
    split = tool.protocol(tool.parse_args(
        ['--methods', 'mae', '--lr-scale', '2', 'bim-localmim=2']))
    assert split == tool.protocol(tool.parse_args(
        ['--methods', 'bim-localmim', '--lr-scale', '2', 'bim-localmim=2']))
    assert split['lr_scale']['bim-localmim'] == 2
    for bad, said in (('beit=2', "unknown method 'beit'"),
                      ('0', 'must be > 0'), ('x', 'SCALE or METHOD=SCALE')):
        with pytest.raises(SystemExit):
            tool.parse_args(['--lr-scale', bad])
        assert said in capsys.readouterr().err


def test_runner_composition_by_name(capsys):
    """BIM x LocalMIM runs only when named, from its own config folder, and
    gets a learning-rate scale of its own without changing other runs'."""
    tool = load('fashion_mnist')
    assert 'bim-localmim' not in tool.parse_args([]).methods
    path = tool.find_config('bim-localmim')
    assert osp.basename(path) == ('bim-localmim_vit-mini-p4_1xb256-coslr-'
                                  '10e_fashion-mnist.py')
    assert osp.basename(osp.dirname(path)) == 'localmim'
    args = tool.parse_args(
        ['--methods', 'mae', 'bim-localmim', '--lr-scale', '2', 'mae=1'])
    assert args.lr_scale == dict(
        mae=1., bim=2., prmim=2., localmim=2., mixmim=2.,
        **{'bim-localmim': 2.})
    # named in --lr-scale only: its scale is recorded, nothing else changes
    assert tool.parse_args(['--lr-scale', 'bim-localmim=2']).lr_scale == dict(
        dict.fromkeys(tool.ALL_METHODS, 1.), **{'bim-localmim': 2.})
    report = load('fashion_mnist_report')
    assert report.NAMES['bim-localmim'] == 'BIM×LocalMIM'
    assert report.ORDER[-1] == 'bim-localmim'


def fake_run(method, seed, knn, probe, seconds, flops_per_s=1e12,
             machine='m1', finetune=(50., 60.)):
    """A finished run evaluated at fractions 0, 0.5 and 1."""
    curve = []
    for i, fraction in enumerate((0., 0.5, 1.)):
        point = dict(
            fraction=fraction,
            seconds=seconds * fraction,
            flops=seconds * fraction * flops_per_s,
            images=int(1000 * fraction),
            knn_top1=knn[i],
            linear_top1=probe[i])
        if fraction in (0., 1.):
            point['finetune_top1'] = finetune[int(fraction)]
        curve.append(point)
    return dict(
        method=method,
        seed=seed,
        config=f'configs/{method}/x.py',
        flops_per_image=flops_per_s,
        protocol=dict(
            unit='seconds',
            budget=seconds,
            train_samples=0,
            eval_points=2,
            eval_train_samples=5000,
            eval_test_samples=2000,
            probe_epochs=100,
            finetune_samples=600,
            finetune_epochs=10,
            cfg_options=None),
        curve=curve,
        machine=machine,
        device='cpu',
        torch='2',
        threads=2)


def write_runs(folder, runs, costs=None):
    os.makedirs(osp.join(folder, 'runs'), exist_ok=True)
    for run in runs:
        with open(
                osp.join(folder, 'runs',
                         f"{run['method']}_seed{run['seed']}.json"),
                'w') as f:
            json.dump(run, f)
    for method, peak in (costs or {}).items():
        os.makedirs(osp.join(folder, 'costs'), exist_ok=True)
        with open(osp.join(folder, 'costs', f'{method}.json'), 'w') as f:
            json.dump(dict(peak_bytes_at_mem_batch=peak, mem_batch=256), f)


def test_reach_is_linear_between_points():
    report = load('fashion_mnist_report')
    curve = [
        dict(seconds=0., knn_top1=50.),
        dict(seconds=10., knn_top1=60.),
        dict(seconds=20., knn_top1=70.)
    ]
    assert report.reach(curve, 'seconds', 'knn_top1', 65.) == 15.
    assert report.reach(curve, 'seconds', 'knn_top1', 60.) == 10.
    assert report.reach(curve, 'seconds', 'knn_top1', 45.) == 0.
    assert report.reach(curve, 'seconds', 'knn_top1', 71.) is None


def test_report_ratios_targets_and_floor(tmp_path):
    report = load('fashion_mnist_report')
    folder = str(tmp_path / 'bench')
    runs = [
        # MAE ends at kNN 60 / probe 70 (seed means) after 100 s
        fake_run('mae', 0, (50, 56, 59), (60, 66, 69), 100.),
        fake_run('mae', 1, (50, 58, 61), (60, 68, 71), 100.),
        # LocalMIM reaches 60 / 70 at half the budget: 0.5x
        fake_run('localmim', 0, (50, 60, 64), (60, 70, 74), 100.,
                 flops_per_s=0.5e12),
        # PR-MIM: kNN 54 -> 62 over the second 50 s passes 60 at 87.5 s
        fake_run('prmim', 0, (50, 54, 62), (60, 70, 72), 100.),
        # BIM's random network already scores MAE's final kNN
        fake_run('bim', 0, (61, 62, 63), (60, 69, 71), 100.),
    ]
    write_runs(folder, runs, costs=dict(mae=100., bim=40., localmim=70.))
    result = report.main([folder])
    rows = {r['method']: r for r in result['rows']}
    assert rows['mae']['knn_top1']['mean'] == 60.
    assert rows['mae']['knn_top1']['values'] == [59, 61]
    local = rows['localmim']['to_baseline_final']
    assert local['knn_top1']['seconds'] == pytest.approx(0.5)
    assert local['linear_top1']['seconds'] == pytest.approx(0.5)
    # half the FLOPs per second: the FLOPs to get there are 0.25x MAE's
    assert local['knn_top1']['flops'] == pytest.approx(0.25)
    assert rows['localmim']['flops_ratio'] == 0.5
    assert rows['localmim']['memory_ratio'] == 0.7
    assert rows['localmim']['targets']['time'] == dict(limit=0.5, met=True)
    prmim = rows['prmim']['to_baseline_final']
    assert prmim['knn_top1']['seconds'] == pytest.approx(0.875)
    assert prmim['linear_top1']['seconds'] == pytest.approx(0.5)
    assert rows['prmim']['targets']['time'] == dict(limit=0.8, met=False)
    assert [r['method'] for r in result['rows']
            ] == ['mae', 'bim', 'prmim', 'localmim']
    # MAE reaches its own final at 1.0
    assert rows['mae']['to_baseline_final']['knn_top1']['seconds'] == 1.
    bim = rows['bim']
    assert bim['to_baseline_final']['knn_top1']['at_init']
    assert bim['targets']['time']['met'] is None
    assert bim['targets']['memory'] == dict(limit=0.45, met=True)
    assert bim['init_knn_top1']['mean'] == 61
    assert bim['finetune_top1']['mean'] == 60.
    with open(osp.join(folder, 'quality.md')) as f:
        md = f.read()
    assert '| LocalMIM | 0.50 | 0.70 |' in md
    assert '0.50 / 0.50 | 0.25 / 0.25 |' in md
    assert '0.00 (floor)' in md and 'undetermined' in md
    assert osp.isfile(osp.join(folder, 'quality_time.png'))


def test_report_reads_no_crossing_from_two_points(tmp_path):
    """Evaluated only at the start and the end (``--eval-points 1``), a run
    gives no time to MAE's final and no time target: the straight line from
    the floor to the final score is not the run's curve."""
    report = load('fashion_mnist_report')
    folder = str(tmp_path / 'bench')
    runs = [
        fake_run('mae', 0, (50, 56, 60), (60, 66, 70), 100.),
        fake_run('localmim', 0, (50, 60, 64), (60, 70, 74), 100.),
    ]
    for run in runs:
        run['protocol']['eval_points'] = 1
        del run['curve'][1]
    write_runs(folder, runs)
    rows = {r['method']: r for r in report.main([folder])['rows']}
    assert rows['localmim']['to_baseline_final'] == {}
    assert 'time' not in rows['localmim'].get('targets', {})
    with open(osp.join(folder, 'quality.md')) as f:
        md = f.read()
    assert '| one point: use --rungs | one point: use --rungs |' in md
    assert 'time to MAE\'s final kNN and probe <=' not in md
    # the same runs with their middle point read the crossing
    two = str(tmp_path / 'two')
    write_runs(two, [
        fake_run('mae', 0, (50, 56, 60), (60, 66, 70), 100.),
        fake_run('localmim', 0, (50, 60, 64), (60, 70, 74), 100.),
    ])
    report.main([two])
    with open(osp.join(two, 'quality.md')) as f:
        assert 'time to MAE\'s final kNN and probe <= 0.5: met' in f.read()


def test_report_keeps_machines_apart(tmp_path):
    report = load('fashion_mnist_report')
    folder = str(tmp_path / 'bench')
    write_runs(folder, [
        fake_run('mae', 0, (50, 56, 60), (60, 66, 70), 100.),
        fake_run('localmim', 0, (50, 60, 64), (60, 70, 74), 100.,
                 machine='m2'),
    ])
    result = report.main([folder])
    assert not result['same_machine']
    local = next(r for r in result['rows'] if r['method'] == 'localmim')
    # FLOPs do not depend on the machine, seconds do
    assert 'seconds' not in local['to_baseline_final']['knn_top1']
    assert local['to_baseline_final']['knn_top1']['flops'] == 0.5
    assert 'time' not in local.get('targets', {})
    assert not osp.exists(osp.join(folder, 'quality_time.png'))
    assert osp.isfile(osp.join(folder, 'quality_flops.png'))


def test_report_refuses_mixed_protocols(tmp_path):
    report = load('fashion_mnist_report')
    folder = str(tmp_path / 'bench')
    other = fake_run('localmim', 0, (50, 60, 64), (60, 70, 74), 50.)
    write_runs(folder,
               [fake_run('mae', 0, (50, 56, 60), (60, 66, 70), 100.), other])
    with pytest.raises(ValueError, match=r"differs .* in \['budget'\]"):
        report.main([folder])


def test_report_lr_scale_is_part_of_the_protocol(tmp_path):
    report = load('fashion_mnist_report')
    old = fake_run('mae', 0, (50, 56, 60), (60, 66, 70), 100.)
    new = fake_run('mae', 1, (50, 56, 60), (60, 66, 70), 100.)
    new['protocol']['lr_scale'] = None
    # a run made before lr_scale existed and one at the configs' lr agree
    write_runs(str(tmp_path / 'a'), [old, new])
    assert report.main([str(tmp_path / 'a')])['rows'][0]['seeds'] == [0, 1]
    scaled = fake_run('mae', 1, (50, 56, 60), (60, 66, 70), 100.)
    scaled['protocol']['lr_scale'] = dict(mae=3.)
    write_runs(str(tmp_path / 'b'), [old, scaled])
    with pytest.raises(ValueError, match=r"in \['lr_scale'\]"):
        report.main([str(tmp_path / 'b')])
    scaled['protocol']['finetune_samples'] = 0  # a sweep may skip it
    write_runs(str(tmp_path / 'c'), [scaled])
    report.main([str(tmp_path / 'c')])
    with open(tmp_path / 'c' / 'quality.md') as f:
        text = f.read()
    assert "Learning rate: the config's times MAE 3." in text
    assert 'no low-label fine-tune.' in text and '0 labels' not in text


def test_report_per_seed_values_and_speed_drift(tmp_path):
    report = load('fashion_mnist_report')
    runs = [
        fake_run('mae', 0, (50, 56, 60), (60, 66, 70), 100.),
        fake_run('mae', 1, (50, 58, 62), (60, 68, 72), 100.)
    ]
    write_runs(str(tmp_path / 'steady'), runs)
    report.main([str(tmp_path / 'steady')])
    with open(tmp_path / 'steady' / 'quality.md') as f:
        text = f.read()
    assert '| MAE | 1000 / 1000 | 60.00 / 62.00 | 70.00 / 72.00 |' in text
    assert 'Throughput differed' not in text
    # seed 1 ran on a machine 1.5x as fast: 1500 images in the same 100 s
    for point in runs[1]['curve']:
        point['images'] = int(point['images'] * 1.5)
    write_runs(str(tmp_path / 'drift'), runs)
    result = report.main([str(tmp_path / 'drift')])
    assert result['speed_spread'] == pytest.approx(1.5)
    with open(tmp_path / 'drift' / 'quality.md') as f:
        text = f.read()
    assert '| MAE | 1000 / 1500 |' in text
    assert 'Throughput differed between seeds by up to 1.50x' in text
    # under a FLOPs budget the seeds did the same work: no such warning
    for run in runs:
        run['protocol']['unit'] = 'flops'
    write_runs(str(tmp_path / 'flops'), runs)
    report.main([str(tmp_path / 'flops')])
    with open(tmp_path / 'flops' / 'quality.md') as f:
        assert 'Throughput differed' not in f.read()


def test_runner_validation_split_options(capsys):
    tool = load('fashion_mnist')
    # the protocol of the recorded runs: test images, nothing held out
    legacy = tool.protocol(tool.parse_args([]))
    assert legacy['split'] is None and legacy['val_images'] is None
    val = tool.protocol(
        tool.parse_args(['--split', 'val', '--val-images', '10000']))
    test = tool.protocol(
        tool.parse_args(['--split', 'test', '--val-images', '10000']))
    assert (val['split'], val['val_images']) == ('val', 10000)
    assert (test['split'], test['val_images']) == ('test', 10000)
    with pytest.raises(SystemExit):
        tool.parse_args(['--split', 'val'])
    assert '--split val scores images held out' in capsys.readouterr().err


def test_report_refuses_mixed_splits(tmp_path):
    report = load('fashion_mnist_report')
    val = fake_run('mae', 0, (50, 56, 60), (60, 66, 70), 100.)
    test = fake_run('localmim', 0, (50, 60, 64), (60, 70, 74), 100.)
    for run, split in ((val, 'val'), (test, 'test')):
        run['protocol'].update(split=split, val_images=10000)
        run.update(pretrain_indices=[0, 50000], val_indices=[50000, 52000])
    write_runs(str(tmp_path / 'mixed'), [val, test])
    with pytest.raises(ValueError, match=r"in \['split'\]"):
        report.main([str(tmp_path / 'mixed')])
    # validation runs alone: the table says what it scored
    write_runs(str(tmp_path / 'val'), [val])
    report.main([str(tmp_path / 'val')])
    with open(tmp_path / 'val' / 'quality.md') as f:
        text = f.read()
    assert ('2000 VALIDATION images (training images 50000..51999; not '
            'test numbers)') in text
    assert '50000 (training images 0..49999; the last 10000 held out' in text


def test_report_shows_the_baselines_without_training(tmp_path):
    report = load('fashion_mnist_report')
    folder = tmp_path / 'bench'
    runs = [
        fake_run('mae', 0, (50, 56, 60), (60, 66, 70), 100.),
        fake_run('localmim', 0, (50, 60, 64), (60, 70, 74), 100.)
    ]
    write_runs(str(folder), runs)
    scores = dict(
        pixels=dict(knn_top1=62., linear_top1=72., dims=1024),
        hog_mean=dict(knn_top1=40., linear_top1=45., dims=36))
    protocol = {
        k: runs[0]['protocol'].get(k)
        for k in ('eval_train_samples', 'eval_test_samples', 'probe_epochs',
                  'split')
    }
    with open(folder / 'baselines.json', 'w') as f:
        json.dump(dict(protocol=protocol, scores=scores), f)
    result = report.main([str(folder)])
    assert result['baselines'] == scores
    text = (folder / 'quality.md').read_text()
    assert '| raw pixels (1024 dims) | 62.00 | 72.00 | - |' in text
    assert ('| HOG, cells averaged per scale (36 dims) | 40.00 | 45.00 |'
            in text)
    # MAE ends at 60 / 70, below pixels on both; LocalMIM at 64 / 74
    assert ('- MAE: raw pixels: neither; HOG, cells averaged per scale: '
            'kNN, probe') in text
    assert '- LocalMIM: raw pixels: kNN, probe;' in text
    # baselines of other images are not shown
    protocol['eval_test_samples'] = 999
    with open(folder / 'baselines.json', 'w') as f:
        json.dump(dict(protocol=protocol, scores=scores), f)
    assert report.main([str(folder)])['baselines'] is None


def test_runner_recipe_knobs(capsys):
    tool = load('fashion_mnist')
    default = tool.protocol(tool.parse_args([]))
    assert default['batch_size'] is None and default['warmup'] is None
    knobs = tool.protocol(
        tool.parse_args(
            ['--batch-size', '64', '--lr-scale', '0.5', '--warmup', '0.2']))
    assert (knobs['batch_size'], knobs['warmup']) == (64, 0.2)
    assert set(knobs['lr_scale'].values()) == {0.5}
    for bad, said in ((['--batch-size', '0'], '--batch-size must be >= 1'),
                      (['--warmup', '1'], r'--warmup must be in [0, 1)')):
        with pytest.raises(SystemExit):
            tool.parse_args(bad)
        assert said in capsys.readouterr().err
    report = load('fashion_mnist_report')
    assert report.lr_note(knobs) == (
        " Learning rate: the config's times MAE 0.5, BIM 0.5, PR-MIM 0.5, "
        'LocalMIM 0.5, MixMIM (ViT) 0.5. Batch 64 for every method. '
        'Warm-up: 0.2 of the budget for every method.')


def test_equal_epoch_tool_runs_at_head(fmnist_root, tmp_path, monkeypatch):
    """The tool of the method pages' equal-epoch tables, on the ViT-Tiny/4
    configs, at a tiny scale."""
    monkeypatch.syspath_prepend(osp.join(REPO_ROOT, 'tools', 'benchmarks'))
    tool = load('fashion_mnist_epochs')
    out = str(tmp_path / 'epochs')
    monkeypatch.setattr('sys.argv', [
        'fashion_mnist_epochs.py', '--quick', '--methods', 'mae',
        '--train-samples', '64', '--eval-train-samples', '40',
        '--eval-test-samples', '20', '--probe-epochs', '2', '--data-root',
        fmnist_root, '--out', out, '--cfg-options',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False'
    ])
    tool.main()
    with open(osp.join(out, 'quality.json')) as f:
        result = json.load(f)
    assert result['meta']['family'] == 'vit-tiny'
    mae = result['rows'][0]
    assert mae['config'] == ('configs/mae/mae_vit-tiny-p4_1xb256-coslr-10e_'
                             'fashion-mnist.py')
    # scored at random init (epoch 0) and after the one epoch
    assert [p['epoch'] for p in mae['runs'][0]['curve']] == [0, 1]
    assert result['rows'][-1]['method'] == 'random init'
    assert osp.isfile(osp.join(out, 'quality.md'))


def test_runner_baselines_only(fmnist_root, tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(osp.join(REPO_ROOT, 'tools', 'benchmarks'))
    tool = load('fashion_mnist')
    out = str(tmp_path / 'base')
    tool.main(
        tiny_args(fmnist_root, out) +
        ['--baselines-only', '--val-images', '100', '--split', 'val'])
    assert not osp.exists(osp.join(out, 'runs'))
    with open(osp.join(out, 'baselines.json')) as f:
        saved = json.load(f)
    assert saved['protocol']['split'] == 'val'
    assert saved['protocol']['val_images'] == 100
    printed = capsys.readouterr().out
    assert f"pixels kNN {saved['scores']['pixels']['knn_top1']:.2f}" in printed
