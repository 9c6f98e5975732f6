# Copyright (c) OpenMMLab. All rights reserved.
import glob
import os.path as osp
import subprocess
import sys
import uuid

import numpy as np
import pytest
import torch
from helpers import DEMO_CONFIG, REPO_ROOT, subprocess_env
from mmengine.config import Config
from mmengine.runner import Runner
from PIL import Image

from mim_plugins.engine.hooks import ReconstructionVisualizationHook
from mim_plugins.visualization import reconstruct, register_reconstructor


def train_tiny(data_root, work_dir, hooks=()):
    cfg = Config.fromfile(DEMO_CONFIG)
    cfg.train_dataloader.dataset.data_prefix = data_root
    cfg.train_dataloader.dataset.indices = 96
    cfg.train_dataloader.batch_size = 16
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    cfg.train_cfg.max_epochs = 1
    cfg.model.backbone.arch = dict(
        embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
    cfg.model.neck.embed_dim = 32
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'vis_{uuid.uuid4().hex[:8]}'
    cfg.custom_hooks = list(hooks)
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


def test_hook_writes_images_at_interval(fmnist_root, tmp_path):
    # 96 images / batch 16 = 6 iterations; interval 2 -> iterations 2, 4, 6
    train_tiny(fmnist_root, tmp_path, [
        dict(type='ReconstructionVisualizationHook', interval=2, num_images=4)
    ])
    files = sorted(
        glob.glob(
            osp.join(tmp_path, '*', 'vis_data', 'vis_image',
                     'reconstruction_*.png')))
    steps = sorted(int(f.rsplit('_', 1)[1][:-4]) for f in files)
    assert steps == [2, 4, 6]
    with Image.open(files[0]) as img:
        # 4 images x 4 panels of 1.3 x 1.4 inch at 120 dpi
        assert img.size == (round(4 * 1.3 * 120), round(4 * 1.4 * 120))


def test_hook_arguments():
    with pytest.raises(ValueError, match='interval'):
        ReconstructionVisualizationHook(interval=0)
    with pytest.raises(ValueError, match='num_images'):
        ReconstructionVisualizationHook(num_images=0)


def test_reconstructor_dispatch_by_mro():

    class Unknown(torch.nn.Module):
        pass

    with pytest.raises(NotImplementedError, match='register_reconstructor'):
        reconstruct(Unknown(), torch.zeros(1, 1, 4, 4))

    class Base(torch.nn.Module):
        pass

    class Child(Base):
        pass

    @register_reconstructor('Base')
    def _panels(model, inputs):
        return dict(original=inputs, doubled=inputs * 2)

    out = reconstruct(Child(), torch.ones(1, 1, 4, 4))
    assert list(out) == ['original', 'doubled']
    assert out['doubled'].sum() == 32


def test_visualize_reconstruction_tool(fmnist_root, tmp_path):
    runner = train_tiny(fmnist_root, tmp_path / 'train')
    ckpt = osp.join(runner.work_dir, 'epoch_1.pth')
    images = tmp_path / 'images'
    images.mkdir()
    for i in range(2):
        Image.fromarray((np.random.rand(28, 28) * 255).astype(np.uint8)).save(
            images / f'img{i}.png')
    cfg_path = tmp_path / 'tiny.py'
    cfg_path.write_text(
        f"_base_ = ['{DEMO_CONFIG}']\n"
        'model = dict(backbone=dict(arch=dict(_delete_=True, embed_dims=32, '
        'num_layers=2, num_heads=2, feedforward_channels=64)), '
        'neck=dict(embed_dim=32))\n')
    proc = subprocess.run([
        sys.executable, 'tools/visualization/visualize_reconstruction.py',
        str(cfg_path), ckpt,
        str(images), '--out',
        str(tmp_path / 'vis')
    ],
                          cwd=REPO_ROOT,
                          env=subprocess_env(),
                          capture_output=True,
                          text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    outs = sorted(glob.glob(str(tmp_path / 'vis' / '*.png')))
    assert [osp.basename(p) for p in outs
            ] == ['img0_reconstruction.png', 'img1_reconstruction.png']
    with Image.open(outs[0]) as img:
        # one image, 4 panels side by side
        assert img.size == (round(4 * 1.3 * 120), round(1 * 1.4 * 120))
