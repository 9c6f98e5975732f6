# Copyright (c) OpenMMLab. All rights reserved.
"""Pre-train 2 iterations, then train Mask R-CNN and UperNet 1 iteration.

The downstream configs are the real ones under configs/benchmarks/, shrunk
(tiny ViT, 64-px images, synthetic COCO/ADE-format data written here); the
backbone is initialised from the plugin pre-training checkpoint.
"""
import json
import os
import os.path as osp
import uuid

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner
from PIL import Image

from conftest import REPO_ROOT

TINY_ARCH = dict(
    embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64)
SIZE = 64


def write_images(folder, n, seed=0):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = []
    for i in range(n):
        img = rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
        img[16:48, 8:40] = (200, 30, 30)  # an object
        name = f'img{i}.jpg'
        Image.fromarray(img).save(osp.join(folder, name))
        names.append(name)
    return names


@pytest.fixture(scope='module')
def pretrain_ckpt(tmp_path_factory):
    """A 2-iteration MAE pre-training of the tiny RGB ViT/16."""
    root = tmp_path_factory.mktemp('pretrain')
    write_images(str(root / 'images'), 4)
    cfg = Config.fromfile(
        osp.join(
            REPO_ROOT,
            'configs/mae/mae_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py'))
    cfg.model.backbone.update(
        arch=TINY_ARCH,
        img_size=SIZE,
        patch_size=16,
        patch_cfg=dict(in_channels=3))
    cfg.model.neck.update(
        num_patches=(SIZE // 16)**2, patch_size=16, in_chans=3, embed_dim=32)
    cfg.model.head.update(patch_size=16, in_channels=3)
    cfg.model.data_preprocessor = dict(
        type='SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True)
    cfg.train_dataloader = dict(
        batch_size=2,
        num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=True),
        collate_fn=dict(type='default_collate'),
        dataset=dict(
            type='CustomDataset',
            data_root=str(root / 'images'),
            with_label=False,
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='RandomResizedCrop', scale=SIZE),
                dict(type='PackInputs')
            ]))
    cfg.train_cfg.max_epochs = 1
    cfg.work_dir = str(root / 'work')
    cfg.experiment_name = f'pre_{uuid.uuid4().hex[:8]}'
    runner = Runner.from_cfg(cfg)
    runner.train()
    ckpt = osp.join(cfg.work_dir, 'epoch_1.pth')
    return ckpt, {
        k: v.clone()
        for k, v in runner.model.state_dict().items()
        if k.startswith('backbone.')
    }


class AssertPretrained(Hook):
    """Checks, before the first step, that the backbone holds the weights."""

    def __init__(self, expected):
        self.expected = expected
        self.checked = False

    def before_train(self, runner):
        state = runner.model.state_dict()
        for key in ('backbone.layers.3.attn.qkv.weight',
                    'backbone.patch_embed.projection.weight'):
            assert torch.equal(state[key], self.expected[key]), key
        self.checked = True


def shrink_backbone(cfg, ckpt):
    cfg.model.backbone.update(
        arch=TINY_ARCH, img_size=SIZE, out_indices=(0, 1, 2, 3))
    cfg.model.backbone.init_cfg.checkpoint = ckpt
    cfg.optim_wrapper.type = 'OptimWrapper'  # fp32 on CPU
    cfg.optim_wrapper.pop('loss_scale', None)
    for key in ('val_dataloader', 'val_cfg', 'val_evaluator',
                'test_dataloader', 'test_cfg', 'test_evaluator'):
        cfg[key] = None
    cfg.experiment_name = f'down_{uuid.uuid4().hex[:8]}'


def run_one_iteration(cfg, expected):
    runner = Runner.from_cfg(cfg)
    check = AssertPretrained(expected)
    runner.register_hook(check)
    runner.train()
    assert check.checked
    return runner


def test_mask_rcnn_from_plugin_checkpoint(pretrain_ckpt, tmp_path):
    ckpt, expected = pretrain_ckpt
    root = tmp_path / 'coco'
    names = write_images(str(root / 'train2017'), 2)
    images, annotations = [], []
    for i, name in enumerate(names):
        images.append(dict(id=i, file_name=name, height=SIZE, width=SIZE))
        annotations.append(
            dict(
                id=i,
                image_id=i,
                category_id=1,
                bbox=[8, 16, 32, 32],
                area=32 * 32,
                iscrowd=0,
                segmentation=[[8, 16, 40, 16, 40, 48, 8, 48]]))
    os.makedirs(root / 'annotations')
    with open(root / 'annotations' / 'train.json', 'w') as f:
        json.dump(
            dict(
                images=images,
                annotations=annotations,
                categories=[dict(id=1, name='person')]), f)

    cfg = Config.fromfile(
        osp.join(
            REPO_ROOT, 'configs/benchmarks/mmdetection/'
            'vit-base-p16_mask-rcnn_fpn_amp-1x_coco.py'))
    shrink_backbone(cfg, ckpt)
    cfg.model.neck[0].update(embed_dim=32, norm_cfg=dict(type='BN'))
    cfg.model.neck[1].update(in_channels=[32] * 4, out_channels=64)
    cfg.model.rpn_head.update(in_channels=64, feat_channels=64)
    cfg.model.roi_head.bbox_roi_extractor.out_channels = 64
    cfg.model.roi_head.mask_roi_extractor.out_channels = 64
    cfg.model.roi_head.bbox_head.update(in_channels=64, fc_out_channels=64)
    cfg.model.roi_head.mask_head.update(in_channels=64, conv_out_channels=64)
    cfg.train_dataloader.update(
        batch_size=2, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.update(
        data_root=str(root) + '/',
        ann_file='annotations/train.json',
        data_prefix=dict(img='train2017/'))
    cfg.train_dataloader.dataset.pipeline[2] = dict(
        type='Resize', scale=(SIZE, SIZE), keep_ratio=True)
    cfg.train_cfg.max_epochs = 1
    cfg.work_dir = str(tmp_path / 'work')
    runner = run_one_iteration(cfg, expected)
    assert runner.iter == 1


def test_upernet_from_plugin_checkpoint(pretrain_ckpt, tmp_path):
    ckpt, expected = pretrain_ckpt
    root = tmp_path / 'ade'
    names = write_images(str(root / 'images' / 'training'), 2)
    os.makedirs(root / 'annotations' / 'training')
    for name in names:
        seg = np.zeros((SIZE, SIZE), dtype=np.uint8)
        seg[16:48, 8:40] = 3
        Image.fromarray(seg).save(root / 'annotations' / 'training' /
                                  name.replace('.jpg', '.png'))

    cfg = Config.fromfile(
        osp.join(
            REPO_ROOT, 'configs/benchmarks/mmsegmentation/'
            'vit-base-p16_upernet_8xb2-amp-160k_ade20k-512x512.py'))
    shrink_backbone(cfg, ckpt)
    crop = (SIZE, SIZE)
    cfg.model.data_preprocessor.size = crop
    cfg.model.backbone.img_size = crop
    cfg.model.neck.update(embed_dim=32, norm_cfg=dict(type='BN'))
    cfg.model.decode_head.update(
        in_channels=[32] * 4, channels=32, norm_cfg=dict(type='BN'))
    cfg.model.auxiliary_head.update(
        in_channels=32, channels=16, norm_cfg=dict(type='BN'))
    cfg.train_dataloader.update(
        batch_size=2, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.update(data_root=str(root))
    cfg.train_dataloader.dataset.pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', reduce_zero_label=True),
        dict(type='PackSegInputs')
    ]
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=1)
    cfg.work_dir = str(tmp_path / 'work')
    runner = run_one_iteration(cfg, expected)
    assert runner.iter == 1
