# Copyright (c) OpenMMLab. All rights reserved.
import os.path as osp

import pytest
import torch
from helpers import REPO_ROOT
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

import mim_plugins  # noqa: F401
from mim_plugins.visualization import reconstruct, render_reconstruction_grid


def _tiny_model():
    cfg = Config.fromfile(
        osp.join(
            REPO_ROOT, 'configs/mixmim/'
            'mixmim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py'))
    cfg.model.backbone.arch = dict(
        embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
    cfg.model.neck.embed_dim = 32
    cfg.model.neck.decoder_embed_dim = 32
    cfg.model.neck.decoder_depth = 1
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    return model, cfg


def test_mixmim_panels():
    model, cfg = _tiny_model()
    inputs = torch.randn(4, 1, 32, 32)
    panels = reconstruct(model, inputs, seed=0)
    assert list(panels) == ['original', 'mixed', 'reconstruction', 'mask']
    assert panels['reconstruction'].shape == inputs.shape
    mask = panels['mask'][0].reshape(8, 8)
    pixel = mask.repeat_interleave(4, 0).repeat_interleave(4, 1)
    expected = inputs * (1 - pixel) + inputs.flip(0) * pixel
    torch.testing.assert_close(panels['mixed'], expected)
    image = render_reconstruction_grid(
        panels,
        mean=cfg.data_preprocessor.mean,
        std=cfg.data_preprocessor.std,
        num_images=4,
        title='MixMIMPlus')
    assert image.ndim == 3


def test_mixmim_panels_odd_batch():
    model, _ = _tiny_model()
    with pytest.raises(NotImplementedError, match='even'):
        reconstruct(model, torch.randn(3, 1, 32, 32))
