# Copyright (c) OpenMMLab. All rights reserved.
import copy

import pytest
import torch
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

from mim_plugins.visualization import reconstruct

CFG = dict(
    type='LocalMIM',
    backbone=dict(
        type='LocalMIMViT',
        arch=dict(
            embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64),
        img_size=16,
        patch_size=4,
        patch_cfg=dict(in_channels=1),
        out_indices=[1, 2, 3]),
    neck=dict(
        type='LocalMIMNeck',
        num_patches=16,
        embed_dim=32,
        out_channels=[9, 9, 9],
        scales=[2, 1, 0.5],
        decoder_embed_dim=16,
        decoder_num_heads=2),
    head=dict(
        type='LocalMIMHead', patch_size=4, in_channels=1, scales=[2, 1, 0.5]))


def build(target):
    cfg = copy.deepcopy(CFG)
    if target == 'pixel':
        cfg['head'].update(target='pixel')
        cfg['neck'].update(out_channels=[4, 16, 64])
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg)
    model.init_weights()
    return model


@pytest.mark.parametrize('target', ['pixel', 'hog'])
def test_localmim_panels(target):
    model = build(target)
    inputs = torch.randn(2, 1, 16, 16)
    panels = reconstruct(model, inputs, seed=0)
    images = [k for k, v in panels.items() if v.dim() == 4]
    if target == 'pixel':
        assert images == ['original', 'masked', 'reconstruction', 'composite']
        head = model.head
        # visible pixels of the composite are the input's
        visible = (1 - panels['mask']).bool().reshape(2, 4, 4)
        visible = visible.repeat_interleave(4, 1).repeat_interleave(4, 2)
        comp = panels['composite'][:, 0]
        assert torch.allclose(comp[visible], inputs[:, 0][visible])
        assert head.cell_sizes[0] == 2  # finest: 2-px cells
    else:
        assert images == ['original', 'masked', 'HOG target', 'HOG prediction']
        hog = panels['HOG target']
        assert hog.shape == inputs.shape
        assert hog.min() >= inputs.min() - 1e-6
        assert hog.max() <= inputs.max() + 1e-6
    assert panels['mask'].shape == (2, 16)
