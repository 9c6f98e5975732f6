# Copyright (c) OpenMMLab. All rights reserved.
import json
import os.path as osp
import subprocess
import sys

import pytest
from helpers import REPO_ROOT, subprocess_env
from mmengine.config import Config
from PIL import Image


def test_demo_end_to_end(fmnist_root, tmp_path):
    """All five methods (MixMIM named) for 1 s each, on the fake data."""
    work_dir = str(tmp_path / 'demo')
    proc = run_demo([
        '--methods', 'mae', 'bim', 'prmim', 'localmim', 'mixmim',
        '--data-root', fmnist_root, '--work-dir', work_dir, '--budget', '1',
        '--train-samples', '64', '--eval-points', '1',
        '--eval-train-samples', '40', '--eval-test-samples', '20', '--knn-k',
        '5', '--probe-epochs', '5', '--finetune-samples', '16',
        '--finetune-epochs', '1', '--batch-size', '16', '--lr-scale', '0.5',
        'localmim=2',
        '--warmup', '0.2', '--cfg-options', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False'
    ], REPO_ROOT)
    assert proc.returncode == 0, proc.stdout[-4000:]
    with open(osp.join(work_dir, 'demo_results.json')) as f:
        res = json.load(f)
    methods = ['mae', 'bim', 'prmim', 'localmim', 'mixmim']
    assert [run['method'] for run in res['runs']] == methods
    # the recipe knobs, the same for every method, recorded
    assert (res['batch_size'], res['warmup']) == (16, .2)
    assert res['lr_scale'] == dict(mae=.5, bim=.5, prmim=.5, localmim=2.,
                                   mixmim=.5)
    for run in res['runs']:
        assert run['batch_size'] == 16 and run['schedule']['warmup'] == 0.2
        config_lr = Config.fromfile(run['config']).optim_wrapper.optimizer.lr
        assert run['lr'] == pytest.approx(
            res['lr_scale'][run['method']] * config_lr)
    for run in res['runs']:
        init, final = run['curve'][0], run['curve'][-1]
        assert init['fraction'] == 0 and final['final']
        # the clock ends the run once 1 s of training is spent
        assert final['seconds'] >= 1 and final['images'] > 0
        for point in (init, final):
            assert {'knn_top1', 'linear_top1', 'finetune_top1'} <= set(point)
        assert run['peak_bytes'] > 0 and run['flops_per_image'] > 0
        assert osp.isfile(run['checkpoint'])
        with Image.open(run['reconstruction_png']) as img:
            assert img.size[0] > 0
    assert osp.isfile(osp.join(work_dir, 'accuracy_vs_time.png'))
    out = proc.stdout
    table = out[out.index('| method | peak mem'):]
    for name in ('| MAE |', '| BIM |', '| PR-MIM |', '| LocalMIM |',
                 '| MixMIM (ViT) |'):
        assert name in table
    # one verdict per method on the random-init floor
    assert table.count('random-init floor') == 5
    # the baselines without training, on the same images and protocol
    assert set(res['baselines']) == {'pixels', 'hog_mean', 'hog_patches'}
    pixels = res['baselines']['pixels']
    assert (f"| raw pixels (1024 dims), no training | - | - | - | - | "
            f"{pixels['knn_top1']:.1f} | {pixels['linear_top1']:.1f} | - |"
            ) in table
    assert table.count('baseline without training') + table.count(
        ' Above ') == 5
    # the console: progress lines, not mmengine's INFO lines
    progress = [line for line in out.splitlines() if line.startswith('[demo]')]
    assert sum('random init' in line for line in progress) == 5
    assert sum('/1 s, ' in line for line in progress) == 5  # final records
    assert 'paramwise_options' not in out and 'INFO' not in out
    assert len(out.splitlines()) < 60
    with open(res['runs'][0]['log_file']) as f:
        assert 'paramwise_options' in f.read()


def run_demo(args: list, cwd: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable,
         osp.join(REPO_ROOT, 'tools', 'run_demo.py'), *args],
        cwd=cwd,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600)


def test_demo_says_where_the_data_must_be(tmp_path):
    proc = run_demo(['--work-dir', str(tmp_path / 'demo')], str(tmp_path))
    assert proc.returncode != 0
    assert 'Fashion-MNIST not found: ' + str(
        tmp_path / 'data' / 'fashion-mnist') in proc.stdout
    assert '--data-root DIR' in proc.stdout


def test_demo_verdict_needs_the_margin(monkeypatch):
    """A method counts as learned only MARGIN points above its floor: 1.5
    points on 2,000 images is inside the evaluation's noise."""
    monkeypatch.syspath_prepend(osp.join(REPO_ROOT, 'tools'))
    import run_demo

    def row(method, knn, probe, finetune):
        init = dict(knn_top1=60., linear_top1=70., finetune_top1=65.)
        final = dict(knn_top1=knn, linear_top1=probe, finetune_top1=finetune,
                     images=100, seconds=1.)
        return dict(method=method, peak_bytes=1, batch_size=64,
                    flops_per_image=1e9, curve=[init, final])

    text = run_demo.table([row('mae', 61.9, 71.5, 64.), row('bim', 60., 72.,
                                                             67.5)], 60.)
    assert '- MAE: NOT 2 points above its random-init floor on any' in text
    assert ('- BIM: 2+ points above its random-init floor on probe (+2.0), '
            'fine-tune (+2.5).') in text
    # 2 points is twice the standard error of a 70 % top-1 on 2,000 images
    assert run_demo.MARGIN == 2
    assert run_demo.standard_error(2000) == pytest.approx(1.0247, abs=1e-4)
    assert run_demo.parse_args([]).batch_size == 64
    # MixMIM only when named: its 2.95x FLOPs per image would push the demo
    # past 12 minutes
    assert run_demo.parse_args([]).methods == ['mae', 'bim', 'prmim',
                                               'localmim']
    assert 'mixmim' in run_demo.parse_args(['--methods', 'mixmim']).methods
    assert run_demo.parse_args(['--batch-size', '0']).batch_size is None
