# Copyright (c) OpenMMLab. All rights reserved.
import json
import subprocess
import sys

from conftest import REPO_ROOT, subprocess_env


def test_quick_quality_table(fmnist_root, tmp_path):
    out = tmp_path / 'quality'
    proc = subprocess.run([
        sys.executable, 'tools/benchmarks/fashion_mnist.py', '--quick',
        '--methods', 'mae', 'nosuchmethod', '--train-samples', '320',
        '--eval-train-samples', '100', '--eval-test-samples', '50',
        '--probe-epochs', '5', '--data-root', fmnist_root, '--out',
        str(out), '--cfg-options', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False'
    ],
                          cwd=REPO_ROOT,
                          env=subprocess_env(),
                          capture_output=True,
                          text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
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
    proc = subprocess.run([
        sys.executable, 'tools/benchmarks/fashion_mnist.py', '--quick',
        '--methods', 'prmim', '--finetune', '--linear', '--batch-size', '8',
        '--train-samples', '80', '--eval-train-samples', '80',
        '--eval-test-samples', '32', '--probe-epochs', '2', '--data-root',
        fmnist_root, '--out',
        str(out), '--cfg-options', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False'
    ],
                          cwd=REPO_ROOT,
                          env=subprocess_env(),
                          capture_output=True,
                          text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / 'quality.json') as f:
        report = json.load(f)
    assert report['meta']['transfer_epochs'] == 1
    prmim, floor = report['rows']
    for key in ('finetune_top1', 'linear_cfg_top1'):
        assert 0.0 <= prmim[key]['mean'] <= 100.0
        assert key not in floor
    table = (out / 'quality.md').read_text()
    assert '| fine-tune top-1 (%) | linear-probe config top-1 (%) |' in table
    assert table.count('| --- ') == 8
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


def test_eval_epochs_with_and_without_random_init():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'fashion_mnist_tool',
        f'{REPO_ROOT}/tools/benchmarks/fashion_mnist.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.eval_epochs(10, 4) == [0, 2, 4, 6, 8, 10]
    assert tool.eval_epochs(2, 2) == [0, 1, 2]
    # --no-init-eval drops only the random-init point
    assert tool.eval_epochs(2, 2, init=False) == [1, 2]
    assert tool.eval_epochs(2, 1, init=False) == [2]
