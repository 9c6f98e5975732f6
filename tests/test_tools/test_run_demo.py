# Copyright (c) OpenMMLab. All rights reserved.
import json
import os.path as osp
import subprocess
import sys

from helpers import REPO_ROOT, subprocess_env
from PIL import Image


def test_demo_end_to_end(fmnist_root, tmp_path):
    work_dir = str(tmp_path / 'demo')
    proc = subprocess.run([
        sys.executable, 'tools/run_demo.py', '--work-dir', work_dir,
        '--epochs', '1', '--train-samples', '320', '--eval-train-samples',
        '100', '--eval-test-samples', '50', '--knn-k', '5', '--probe-epochs',
        '10', '--cfg-options',
        f'train_dataloader.dataset.data_prefix={fmnist_root}',
        f'feature_eval_data.train.data_prefix={fmnist_root}',
        f'feature_eval_data.test.data_prefix={fmnist_root}',
        'train_dataloader.batch_size=32', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False'
    ],
                          cwd=REPO_ROOT,
                          env=subprocess_env(),
                          stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT,
                          text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert 'eta:' in proc.stdout  # mmengine progress logging
    with open(osp.join(work_dir, 'demo_results.json')) as f:
        res = json.load(f)
    assert res['epochs'] == 1 and res['train_images'] == 320
    for part in ('pretrained', 'random_init'):
        assert set(res[part]) == {
            'knn_top1', 'linear_top1', 'pc1_share', 'test_loss'
        }
        assert 0 < res[part]['pc1_share'] <= 1
        assert 0 <= res[part]['knn_top1'] <= 100
        assert 0 <= res[part]['linear_top1'] <= 100
    # 10 iterations of MAE already fit the bars better than random weights
    assert res['pretrained']['test_loss'] < res['random_init']['test_loss']
    # the fake classes are bars at different heights: far above chance
    assert res['random_init']['knn_top1'] > 50
    assert osp.isfile(res['checkpoint'])
    with Image.open(res['reconstruction_png']) as img:
        assert img.size == (round(8 * 1.3 * 120), round(4 * 1.4 * 120))
    table = proc.stdout[proc.stdout.rindex('Fashion-MNIST demo'):]
    for row in ('kNN top-1', 'random-init kNN top-1', 'linear-probe top-1',
                'pre-train wall time', 'test masked-patch loss', 'checkpoint'):
        assert row in table


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


def test_demo_short_epoch_elsewhere(fmnist_root, tmp_path):
    """From another directory (default config found next to the script),
    data from --data-root, and one epoch of 2 iterations: the 0.1-epoch
    warm-up must not round to zero iterations."""
    work_dir = str(tmp_path / 'demo')
    proc = run_demo([
        '--data-root', fmnist_root, '--work-dir', work_dir, '--epochs', '1',
        '--train-samples', '64', '--eval-train-samples', '60',
        '--eval-test-samples', '20', '--knn-k', '5', '--probe-epochs', '0',
        '--cfg-options', 'train_dataloader.batch_size=32',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False'
    ], str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-4000:]
    with open(osp.join(work_dir, 'demo_results.json')) as f:
        res = json.load(f)
    assert res['config'].endswith(
        'mae/mae_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py')
    assert res['epochs'] == 1 and res['train_images'] == 64
    assert 'Epoch(train) [1][2/2]' in proc.stdout  # 2 iterations ran
    assert not (tmp_path / 'data').exists()


def test_demo_says_where_the_data_must_be(tmp_path):
    proc = run_demo(['--work-dir', str(tmp_path / 'demo')], str(tmp_path))
    assert proc.returncode != 0
    assert 'Fashion-MNIST not found: ' + str(
        tmp_path / 'data' / 'fashion-mnist') in proc.stdout
    assert '--data-root DIR' in proc.stdout
