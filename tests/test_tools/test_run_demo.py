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
