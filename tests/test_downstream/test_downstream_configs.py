# Copyright (c) OpenMMLab. All rights reserved.
"""Downstream configs: they build, and train from plugin checkpoints.

Every transfer config (classification benchmarks under
``configs/<algo>/benchmarks/``, Mask R-CNN and UperNet under
``configs/benchmarks/``) parses and points its backbone at a pre-trained
checkpoint; the detection and segmentation ones build with their layer-decay
optimizer. The ViT-B and MixMIM-B Mask R-CNN / UperNet configs are then run
for one iteration, shrunk (tiny backbone, 64-px images, synthetic COCO/ADE
format data written here), with the backbone initialised from a 2-iteration
plugin pre-training (tiny MAE, resp. tiny hierarchical MixMIM).
"""
import glob
import json
import os
import os.path as osp
import uuid
from typing import Dict, List, Sequence, Tuple

import numpy as np
import pytest
import torch
from helpers import REPO_ROOT
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from PIL import Image

TINY_ARCH = dict(
    embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64)
# tiny hierarchical MixMIM: 64 px, stage maps 16/8/4/2 px wide
TINY_MIXMIM = dict(
    arch=dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 4]),
    img_size=64,
    window_size=[4, 4, 4, 2])
TINY_MIXMIM_CHANNELS = [16, 32, 64, 128]
SIZE = 64

VIT_KEYS = ('backbone.layers.3.attn.qkv.weight',
            'backbone.patch_embed.projection.weight')
MIXMIM_KEYS = ('backbone.layers.3.blocks.0.attn.qkv.weight',
               'backbone.layers.0.blocks.0.ffn.layers.1.weight',
               'backbone.patch_embed.projection.weight',
               'backbone.norm.weight')

DET_DIR = osp.join(REPO_ROOT, 'configs', 'benchmarks', 'mmdetection')
SEG_DIR = osp.join(REPO_ROOT, 'configs', 'benchmarks', 'mmsegmentation')
DOWNSTREAM = sorted(
    glob.glob(osp.join(DET_DIR, '*.py')) +
    glob.glob(osp.join(SEG_DIR, '*.py')))
CLASSIFICATION = sorted(
    glob.glob(osp.join(REPO_ROOT, 'configs', '*', 'benchmarks', '*.py')))
ALGOS = ('mae', 'bim', 'prmim', 'localmim', 'mixmim')


def rel(path: str) -> str:
    return osp.relpath(path, REPO_ROOT)


def write_images(folder: str, n: int, seed: int = 0) -> List[str]:
    """Random 64-px RGB images with a red box at [8:40, 16:48]."""
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


def pretrain_dataloader(folder: str) -> dict:
    """4 unlabelled RGB images, 2 a batch: 2 iterations an epoch."""
    write_images(folder, 4)
    return dict(
        batch_size=2,
        num_workers=0,
        drop_last=True,
        sampler=dict(type='DefaultSampler', shuffle=True),
        collate_fn=dict(type='default_collate'),
        dataset=dict(
            type='CustomDataset',
            data_root=folder,
            with_label=False,
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='RandomResizedCrop', scale=SIZE),
                dict(type='PackInputs')
            ]))


def pretrain(cfg: Config, root) -> Tuple[str, Dict[str, torch.Tensor]]:
    """Run ``cfg`` 2 iterations; its checkpoint and backbone tensors."""
    cfg.model.data_preprocessor = dict(
        type='SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True)
    cfg.train_dataloader = pretrain_dataloader(str(root / 'images'))
    cfg.train_cfg.max_epochs = 1
    cfg.work_dir = str(root / 'work')
    cfg.experiment_name = f'pre_{uuid.uuid4().hex[:8]}'
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 2
    ckpt = osp.join(cfg.work_dir, 'epoch_1.pth')
    return ckpt, {
        k: v.clone()
        for k, v in runner.model.state_dict().items()
        if k.startswith('backbone.')
    }


@pytest.fixture(scope='module')
def pretrain_ckpt(tmp_path_factory):
    """A 2-iteration MAE pre-training of the tiny RGB ViT/16."""
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
    return pretrain(cfg, tmp_path_factory.mktemp('pretrain'))


@pytest.fixture(scope='module')
def mixmim_pretrain_ckpt(tmp_path_factory):
    """A 2-iteration MixMIM pre-training of a tiny MixMIM-B-shaped model."""
    cfg = Config.fromfile(
        osp.join(
            REPO_ROOT, 'configs/mixmim/'
            'mixmim_mixmim-base_16xb128-coslr-300e_in1k.py'))
    cfg.model.backbone.update(TINY_MIXMIM)
    # one 2x2 grid of 32-px mixing cells at the last stage
    cfg.model.neck.update(
        num_patches=4,
        embed_dim=TINY_MIXMIM_CHANNELS[-1],
        decoder_embed_dim=32,
        decoder_depth=1,
        decoder_num_heads=2)
    return pretrain(cfg, tmp_path_factory.mktemp('pretrain_mixmim'))


class AssertPretrained(Hook):
    """Checks, before the first step, that the backbone holds the weights."""

    def __init__(self, expected: Dict[str, torch.Tensor],
                 keys: Sequence[str]) -> None:
        self.expected = expected
        self.keys = keys
        self.checked = False

    def before_train(self, runner) -> None:
        state = runner.model.state_dict()
        for key in self.keys:
            assert torch.equal(state[key], self.expected[key]), key
        self.checked = True


def common_shrink(cfg: Config, ckpt: str) -> None:
    """Pre-trained backbone, fp32 on CPU, no evaluation."""
    cfg.model.backbone.init_cfg.checkpoint = ckpt
    cfg.optim_wrapper.type = 'OptimWrapper'  # fp32 on CPU
    cfg.optim_wrapper.pop('loss_scale', None)
    for key in ('val_dataloader', 'val_cfg', 'val_evaluator',
                'test_dataloader', 'test_cfg', 'test_evaluator'):
        cfg[key] = None
    cfg.experiment_name = f'down_{uuid.uuid4().hex[:8]}'
    cfg.default_hooks.logger.interval = 1  # the one step's losses


def shrink_backbone(cfg: Config, ckpt: str) -> None:
    """The tiny ViT of ``pretrain_ckpt`` in a ViT-B downstream config."""
    cfg.model.backbone.update(
        arch=TINY_ARCH, img_size=SIZE, out_indices=(0, 1, 2, 3))
    common_shrink(cfg, ckpt)


def shrink_mixmim_backbone(cfg: Config, ckpt: str) -> None:
    """The tiny MixMIM of ``mixmim_pretrain_ckpt`` in a MixMIM-B config."""
    cfg.model.backbone.update(TINY_MIXMIM)
    common_shrink(cfg, ckpt)


def run_one_iteration(cfg: Config, expected: Dict[str, torch.Tensor],
                      keys: Sequence[str]) -> Runner:
    runner = Runner.from_cfg(cfg)
    check = AssertPretrained(expected, keys)
    runner.register_hook(check)
    runner.train()
    assert check.checked
    assert runner.iter == 1
    return runner


def write_coco(root) -> None:
    """Two 64-px images in COCO instance format, one box + mask each."""
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


def shrink_mask_rcnn(cfg: Config, root, work_dir: str) -> None:
    """64-wide FPN and heads, the tiny COCO data, 1 epoch of 1 batch."""
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
    cfg.work_dir = work_dir


def write_ade(root) -> None:
    """Two 64-px images in ADE20K layout, class 3 (2 after reduce) box."""
    names = write_images(str(root / 'images' / 'training'), 2)
    os.makedirs(root / 'annotations' / 'training')
    for name in names:
        seg = np.zeros((SIZE, SIZE), dtype=np.uint8)
        seg[16:48, 8:40] = 3
        Image.fromarray(seg).save(root / 'annotations' / 'training' /
                                  name.replace('.jpg', '.png'))


def shrink_upernet(cfg: Config, root, work_dir: str) -> None:
    """64-px crops, the tiny ADE data, 1 iteration."""
    cfg.model.data_preprocessor.size = (SIZE, SIZE)
    cfg.train_dataloader.update(
        batch_size=2, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.update(data_root=str(root))
    cfg.train_dataloader.dataset.pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', reduce_zero_label=True),
        dict(type='PackSegInputs')
    ]
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=1)
    cfg.work_dir = work_dir


def test_mask_rcnn_from_plugin_checkpoint(pretrain_ckpt, tmp_path):
    ckpt, expected = pretrain_ckpt
    write_coco(tmp_path / 'coco')
    cfg = Config.fromfile(
        osp.join(DET_DIR, 'vit-base-p16_mask-rcnn_fpn_amp-1x_coco.py'))
    shrink_backbone(cfg, ckpt)
    cfg.model.neck[0].update(embed_dim=32, norm_cfg=dict(type='BN'))
    cfg.model.neck[1].update(in_channels=[32] * 4, out_channels=64)
    shrink_mask_rcnn(cfg, tmp_path / 'coco', str(tmp_path / 'work'))
    run_one_iteration(cfg, expected, VIT_KEYS)


def test_upernet_from_plugin_checkpoint(pretrain_ckpt, tmp_path):
    ckpt, expected = pretrain_ckpt
    write_ade(tmp_path / 'ade')
    cfg = Config.fromfile(
        osp.join(SEG_DIR,
                 'vit-base-p16_upernet_8xb2-amp-160k_ade20k-512x512.py'))
    shrink_backbone(cfg, ckpt)
    cfg.model.backbone.img_size = (SIZE, SIZE)
    cfg.model.neck.update(embed_dim=32, norm_cfg=dict(type='BN'))
    cfg.model.decode_head.update(
        in_channels=[32] * 4, channels=32, norm_cfg=dict(type='BN'))
    cfg.model.auxiliary_head.update(
        in_channels=32, channels=16, norm_cfg=dict(type='BN'))
    shrink_upernet(cfg, tmp_path / 'ade', str(tmp_path / 'work'))
    run_one_iteration(cfg, expected, VIT_KEYS)


def test_mixmim_mask_rcnn_from_plugin_checkpoint(mixmim_pretrain_ckpt,
                                                 tmp_path):
    ckpt, expected = mixmim_pretrain_ckpt
    write_coco(tmp_path / 'coco')
    cfg = Config.fromfile(
        osp.join(DET_DIR, 'mixmim-base_mask-rcnn_fpn_amp-1x_coco.py'))
    shrink_mixmim_backbone(cfg, ckpt)
    cfg.model.neck.update(in_channels=TINY_MIXMIM_CHANNELS, out_channels=64)
    shrink_mask_rcnn(cfg, tmp_path / 'coco', str(tmp_path / 'work'))
    runner = run_one_iteration(cfg, expected, MIXMIM_KEYS)
    # layer decay reached the detector's backbone: stem < neck
    lr = {
        id(p): group['lr']
        for group in runner.optim_wrapper.optimizer.param_groups
        for p in group['params']
    }
    model = runner.model
    stem = model.backbone.patch_embed.projection.weight
    neck = model.neck.lateral_convs[0].conv.weight
    assert lr[id(stem)] < lr[id(neck)]


def test_mixmim_upernet_from_plugin_checkpoint(mixmim_pretrain_ckpt, tmp_path):
    ckpt, expected = mixmim_pretrain_ckpt
    write_ade(tmp_path / 'ade')
    cfg = Config.fromfile(
        osp.join(SEG_DIR,
                 'mixmim-base_upernet_8xb2-amp-160k_ade20k-512x512.py'))
    shrink_mixmim_backbone(cfg, ckpt)
    cfg.model.decode_head.update(
        in_channels=TINY_MIXMIM_CHANNELS,
        channels=32,
        norm_cfg=dict(type='BN'))
    cfg.model.auxiliary_head.update(
        in_channels=TINY_MIXMIM_CHANNELS[2],
        channels=16,
        norm_cfg=dict(type='BN'))
    shrink_upernet(cfg, tmp_path / 'ade', str(tmp_path / 'work'))
    run_one_iteration(cfg, expected, MIXMIM_KEYS)


def test_every_method_has_its_benchmark_configs():
    names = {rel(p) for p in CLASSIFICATION}
    for algo in ALGOS:
        for name in ('vit-base-p16_8xb128-coslr-100e_in1k.py',
                     'vit-base-p16_8xb2048-linear-coslr-90e_in1k.py',
                     'vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py',
                     'vit-tiny-p4_1xb256-linear-coslr-10e_fashion-mnist.py'):
            assert f'configs/{algo}/benchmarks/{name}' in names
    for name in ('mixmim-base_8xb128-coslr-100e_in1k.py',
                 'mixmim-base_8xb2048-linear-coslr-90e_in1k.py'):
        assert f'configs/mixmim/benchmarks/{name}' in names
    downstream = {osp.basename(p) for p in DOWNSTREAM}
    for backbone in ('vit-base-p16', 'mixmim-base'):
        for schedule in ('1x', '3x'):
            assert (f'{backbone}_mask-rcnn_fpn_amp-{schedule}_coco.py'
                    in downstream)
        assert (f'{backbone}_upernet_8xb2-amp-160k_ade20k-512x512.py'
                in downstream)


@pytest.mark.parametrize(
    'path', CLASSIFICATION, ids=[rel(p) for p in CLASSIFICATION])
def test_classification_benchmark_config(path):
    """Backbone loads a pre-trained checkpoint given on the command line."""
    with open(path) as f:
        header = f.read().split('_base_')[0]
    assert header.startswith('# ')
    assert 'init_cfg.checkpoint=' in header, 'usage in the header comment'
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmpretrain'
    assert 'mim_plugins' in cfg.custom_imports.imports
    assert cfg.model.type == 'ImageClassifier'
    init = cfg.model.backbone.init_cfg
    assert init.type == 'Pretrained' and init.prefix == 'backbone.'
    if '-linear-' in osp.basename(path):
        # frozen encoder, BatchNorm neck, LARS (mmpretrain's MAE probe)
        frozen = cfg.model.backbone.frozen_stages
        depth = cfg.model.backbone.arch
        depth = (
            depth['num_layers'] if isinstance(depth, dict) else
            (4 if 'mixmim' in cfg.model.backbone.type.lower() else 12))
        assert frozen == depth
        necks = cfg.model.neck
        necks = necks if isinstance(necks, list) else [necks]
        assert necks[-1].type == 'ClsBatchNormNeck'
        assert cfg.optim_wrapper.optimizer.type == 'LARS'
    else:
        # fine-tuning: layer-wise lr decay and drop path
        assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate < 1
        assert cfg.model.backbone.drop_path_rate > 0


def build_in_scope(cfg: Config):
    scope = cfg.default_scope
    if scope == 'mmdet':
        import mmdet.models  # noqa: F401
        from mmdet.registry import MODELS
    else:
        import mmseg.models  # noqa: F401
        from mmseg.registry import MODELS
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(cfg.model)
        optim_cfg = cfg.optim_wrapper.copy()
        optim_cfg.type = 'OptimWrapper'  # AMP needs CUDA
        optim_cfg.pop('loss_scale', None)
        optim_wrapper = build_optim_wrapper(model, optim_cfg)
    return model, optim_wrapper


@pytest.mark.parametrize('path', DOWNSTREAM, ids=[rel(p) for p in DOWNSTREAM])
def test_downstream_config_builds(path):
    cfg = Config.fromfile(path)
    assert 'mim_plugins' in cfg.custom_imports.imports
    init = cfg.model.backbone.init_cfg
    assert init.type == 'Pretrained' and init.prefix == 'backbone.'
    cfg.model.backbone.init_cfg = None
    assert cfg.optim_wrapper.constructor == \
        'mmpretrain.BackboneLayerDecayOptimWrapperConstructor'
    model, optim_wrapper = build_in_scope(cfg)
    # layer decay: the stem learns slower than the decoder
    lr = {
        id(p): group['lr']
        for group in optim_wrapper.optimizer.param_groups
        for p in group['params']
    }
    stem = model.backbone.patch_embed.projection.weight
    head = model.rpn_head.rpn_conv.weight if cfg.default_scope == 'mmdet' \
        else model.decode_head.conv_seg.weight
    assert lr[id(stem)] < lr[id(head)]
    if 'mixmim' not in osp.basename(path):
        return
    # the necks/heads take the widths of the four MixMIM-B stages
    model.eval()
    with torch.no_grad():
        outs = model.backbone(torch.zeros(1, 3, SIZE, SIZE))
    widths = [o.shape[1] for o in outs]
    assert widths == [128, 256, 512, 1024]
    assert [o.shape[-1] for o in outs] == [16, 8, 4, 2]  # strides 4..32
    if cfg.default_scope == 'mmdet':
        assert list(cfg.model.neck.in_channels) == widths
        feats = model.neck(outs)
        assert len(feats) == 5
    else:
        assert list(cfg.model.decode_head.in_channels) == widths
        aux = cfg.model.auxiliary_head
        assert aux.in_channels == widths[aux.in_index]
