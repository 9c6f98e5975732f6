# Copyright (c) OpenMMLab. All rights reserved.
"""Training through the Runner and through every launcher (2 iterations)."""
import glob
import importlib.util
import math
import os.path as osp
import re
import subprocess
import sys
import uuid

import pytest
import torch
from helpers import (DEMO_CONFIG, REPO_ROOT, VENV_BIN, small_run_options,
                      subprocess_env)
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

FINETUNE_CONFIG = osp.join(
    REPO_ROOT, 'configs/mae/benchmarks/'
    'vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py')


class IterRecorder(Hook):
    """Records the iteration index and loss of every training step."""

    def __init__(self):
        self.iters, self.losses = [], []

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        self.iters.append(runner.iter)
        self.losses.append(float(outputs['loss'].detach()))


def demo_cfg(data_root, work_dir, max_epochs=1, **extra):
    cfg = Config.fromfile(DEMO_CONFIG)
    cfg.train_dataloader.dataset.data_prefix = data_root
    cfg.train_dataloader.dataset.indices = 64
    cfg.train_dataloader.batch_size = 32
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    cfg.train_cfg.max_epochs = max_epochs
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'test_{uuid.uuid4().hex[:8]}'
    cfg.merge_from_dict(extra)
    return cfg


def test_runner_trains_and_resumes(fmnist_root, tmp_path):
    cfg = demo_cfg(fmnist_root, tmp_path)
    runner = Runner.from_cfg(cfg)
    rec = IterRecorder()
    runner.register_hook(rec)
    runner.train()
    assert rec.iters == [0, 1]  # 64 images / batch 32 = 2 iterations
    assert all(torch.isfinite(torch.tensor(rec.losses)))
    ckpt = osp.join(tmp_path, 'epoch_1.pth')
    assert osp.isfile(ckpt)
    weights = {k: v.clone() for k, v in runner.model.state_dict().items()}

    # Resume (weights_only-safe loading of the runner checkpoint) and train
    # one more epoch: starts at iteration 2 with the saved weights/optimizer.
    cfg2 = demo_cfg(fmnist_root, tmp_path, max_epochs=2, resume=True)
    runner2 = Runner.from_cfg(cfg2)
    rec2 = IterRecorder()
    runner2.register_hook(rec2)

    class CheckLoaded(Hook):

        def before_train(self, runner):
            state = runner.model.state_dict()
            assert all(torch.equal(state[k], weights[k]) for k in weights)
            assert runner.iter == 2 and runner.epoch == 1
            assert len(runner.optim_wrapper.optimizer.state) > 0

    runner2.register_hook(CheckLoaded())
    runner2.train()
    assert rec2.iters == [2, 3]
    assert osp.isfile(osp.join(tmp_path, 'epoch_2.pth'))


def test_amp_flag_trains_on_cpu(fmnist_root, tmp_path, monkeypatch):
    """``tools/train.py --amp`` without CUDA: bf16 autocast, fp32 weights."""
    if torch.cuda.is_available():
        pytest.skip('CPU-only behaviour')
    spec = importlib.util.spec_from_file_location(
        'train_tool', osp.join(REPO_ROOT, 'tools/train.py'))
    train_tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_tool)
    monkeypatch.delenv('LOCAL_RANK', raising=False)  # parse_args sets it
    monkeypatch.setattr(
        sys, 'argv',
        ['train.py', DEMO_CONFIG, '--amp', '--work-dir',
         str(tmp_path)])
    cfg = train_tool.merge_args(
        demo_cfg(fmnist_root, tmp_path), train_tool.parse_args())
    assert cfg.optim_wrapper.type == 'CPUAmpOptimWrapper'
    runner = Runner.from_cfg(cfg)
    rec = IterRecorder()
    runner.register_hook(rec)
    dtypes = []  # of a linear layer's output (residual sums are fp32)
    runner.model.backbone.layers[0].attn.qkv.register_forward_hook(
        lambda module, args, out: dtypes.append(out.dtype))
    runner.train()
    assert rec.iters == [0, 1]
    assert all(math.isfinite(loss) for loss in rec.losses)
    assert dtypes == [torch.bfloat16] * 2
    assert runner.model.backbone.layers[0].ffn.layers[1].weight.dtype == \
        torch.float32


def run(cmd, cwd, timeout=600):
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc.stdout


def trained_iters(log: str) -> list:
    return re.findall(r'Epoch\(train\)\s+\[1\]\[(\d+)/2\]', log)


def test_tools_train_py(fmnist_root, tmp_path):
    log = run([
        sys.executable, 'tools/train.py', DEMO_CONFIG, '--work-dir',
        str(tmp_path), '--cfg-options', *small_run_options(fmnist_root)
    ], REPO_ROOT)
    assert trained_iters(log) == ['1', '2']


@pytest.mark.parametrize('package', ['mmpretrain', 'mim_plugins'])
def test_mim_train(package, fmnist_root, tmp_path):
    # mmpretrain: its own .mim/tools/train.py with our config path;
    # mim_plugins: our .mim/tools/train.py, config found by its name.
    config = DEMO_CONFIG if package == 'mmpretrain' else osp.basename(
        DEMO_CONFIG)
    log = run([
        osp.join(VENV_BIN, 'mim'), 'train', package, config, '--work-dir',
        str(tmp_path), '--cfg-options', *small_run_options(fmnist_root)
    ], str(tmp_path))
    expected = 'mmpretrain/.mim/tools/train.py' if package == 'mmpretrain' \
        else 'mim_plugins/.mim/tools/train.py'
    assert expected in log
    assert trained_iters(log) == ['1', '2']


def test_dist_train_two_cpu_processes(fmnist_root, tmp_path):
    log = run([
        'bash', 'tools/dist_train.sh', DEMO_CONFIG, '2', '--work-dir',
        str(tmp_path), '--cfg-options',
        *small_run_options(fmnist_root, batch_size=16)
    ], REPO_ROOT)
    assert "backend': 'gloo'" in log or 'backend=gloo' in log.replace(
        "'", '').replace(' ', '')
    assert 'Distributed training: True' in log
    # 64 images, 2 processes x 16 per process -> 2 iterations
    assert trained_iters(log) == ['1', '2']
    assert osp.isfile(osp.join(tmp_path, 'epoch_1.pth'))


def test_tools_test_py_and_dist_test(fmnist_root, tmp_path):
    data = [
        # one key moves every split (apply_data_root in both tools); the
        # fake set has 64+ images, so a run on the real data_prefix would
        # not match the iteration counts below
        f'data_root={fmnist_root}',
        'train_dataloader.dataset.indices=64',
        'test_dataloader.dataset.indices=40',
        'val_dataloader.dataset.indices=40', 'train_dataloader.batch_size=32',
        'test_dataloader.batch_size=20', 'val_dataloader.batch_size=20',
        'train_dataloader.num_workers=0', 'test_dataloader.num_workers=0',
        'val_dataloader.num_workers=0', 'train_cfg.max_epochs=1',
        'model.backbone.init_cfg=None'
    ]
    run([
        sys.executable, 'tools/train.py', FINETUNE_CONFIG, '--work-dir',
        str(tmp_path), '--cfg-options', *data
    ], REPO_ROOT)
    ckpt = osp.join(tmp_path, 'epoch_1.pth')
    out = str(tmp_path / 'metrics.pkl')
    log = run([
        sys.executable, 'tools/test.py', FINETUNE_CONFIG, ckpt, '--work-dir',
        str(tmp_path / 'test'), '--out', out, '--out-item', 'metrics',
        '--cfg-options', *data
    ], REPO_ROOT)
    assert re.search(r'Epoch\(test\).*accuracy/top1: [\d.]+', log)
    import mmengine
    assert 'accuracy/top1' in mmengine.load(out)
    log = run([
        'bash', 'tools/dist_test.sh', FINETUNE_CONFIG, ckpt, '2', '--work-dir',
        str(tmp_path / 'dist_test'), '--cfg-options', *data
    ], REPO_ROOT)
    assert re.search(r'Epoch\(test\).*accuracy/top1: [\d.]+', log)


def test_tools_test_py_rejects_pretrain_config(tmp_path):
    proc = subprocess.run(
        [sys.executable, 'tools/test.py', DEMO_CONFIG, 'none.pth'],
        cwd=REPO_ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True)
    assert proc.returncode != 0
    assert 'has no test_dataloader' in proc.stderr


def test_slurm_scripts_pass_mmpretrain_flags():
    for name in ('slurm_train.sh', 'slurm_test.sh'):
        text = open(osp.join(REPO_ROOT, 'tools', name)).read()
        assert '--launcher="slurm"' in text and 'srun' in text
    assert glob.glob(osp.join(REPO_ROOT, 'mim_plugins/.mim/tools/train.py'))


def test_pretrained_init_and_load_from(fmnist_root, tmp_path):
    """A runner checkpoint feeds `init_cfg=Pretrained` and `load_from`."""
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    runner = Runner.from_cfg(demo_cfg(fmnist_root, tmp_path / 'pretrain'))
    runner.train()
    ckpt = osp.join(tmp_path, 'pretrain', 'epoch_1.pth')
    pretrained = runner.model.state_dict()

    # fine-tune config: backbone weights from the runner checkpoint
    cfg = Config.fromfile(FINETUNE_CONFIG)
    cfg.model.backbone.init_cfg.checkpoint = ckpt
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        classifier = MODELS.build(cfg.model)
    classifier.init_weights()
    for key in ('patch_embed.projection.weight', 'layers.11.attn.qkv.weight'):
        assert torch.equal(classifier.backbone.state_dict()[key],
                           pretrained['backbone.' + key])

    # load_from: weights only, training starts at iteration 0
    cfg2 = demo_cfg(fmnist_root, tmp_path / 'load_from', load_from=ckpt)
    runner2 = Runner.from_cfg(cfg2)
    rec = IterRecorder()
    runner2.register_hook(rec)

    class CheckLoaded(Hook):

        def before_train(self, runner):
            state = runner.model.state_dict()
            assert all(
                torch.equal(state[k], pretrained[k]) for k in pretrained)

    runner2.register_hook(CheckLoaded())
    runner2.train()
    assert rec.iters == [0, 1]
