# Copyright (c) OpenMMLab. All rights reserved.
import copy
import os.path as osp

import pytest
import torch
from helpers import REPO_ROOT
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS
from torch import nn

import mim_plugins  # noqa: F401
from mim_plugins.models import (MixMIMPlus, MixMIMPlusPretrainDecoder,
                                MixMIMPlusPretrainHead)

# tiny hierarchical MixMIM: 64 px, stride 32 -> 2x2 mixing cells
HIER = dict(
    type='MixMIMPlus',
    backbone=dict(
        type='MixMIMPretrainTransformer',
        arch=dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 4]),
        img_size=64,
        window_size=[4, 4, 4, 2],
        mask_ratio=0.5),
    neck=dict(
        type='MixMIMPlusPretrainDecoder',
        num_patches=4,
        encoder_stride=32,
        embed_dim=128,
        decoder_embed_dim=32,
        decoder_depth=1,
        decoder_num_heads=2),
    head=dict(
        type='MixMIMPlusPretrainHead',
        norm_pix=True,
        loss=dict(type='PixelReconstructionLoss', criterion='L2')))

# tiny plain-ViT MixMIM: 32 px gray, patch 4, cells of 8 px
VIT = dict(
    type='MixMIMPlus',
    backbone=dict(
        type='MixMIMViT',
        arch=dict(
            embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64),
        img_size=32,
        patch_size=4,
        patch_cfg=dict(in_channels=1),
        cell_size=8),
    neck=dict(
        type='MixMIMPlusPretrainDecoder',
        num_patches=64,
        in_chans=1,
        encoder_stride=4,
        embed_dim=32,
        decoder_embed_dim=32,
        decoder_depth=1,
        decoder_num_heads=2),
    head=dict(
        type='MixMIMPlusPretrainHead',
        norm_pix=True,
        loss=dict(type='PixelReconstructionLoss', criterion='L2')))


def _build(cfg: dict, **overrides) -> MixMIMPlus:
    cfg = copy.deepcopy(cfg)
    for key, value in overrides.items():
        cfg[key].update(value)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg)
    model.init_weights()
    return model


@pytest.mark.parametrize('cfg, shape', [(HIER, (4, 3, 64, 64)),
                                        (VIT, (4, 1, 32, 32))])
def test_loss_finite_and_gradients_reach_patch_embedding(cfg, shape):
    model = _build(cfg)
    losses = model.loss(torch.randn(*shape), None)
    assert set(losses) == {'loss'} and torch.isfinite(losses['loss'])
    losses['loss'].backward()
    grad = model.backbone.patch_embed.projection.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    assert model.head.in_channels == shape[1]
    feats = model.extract_feat(torch.randn(*shape))
    assert torch.isfinite(feats[0]).all()


@pytest.mark.parametrize('cfg, shape', [(HIER, (3, 3, 64, 64)),
                                        (VIT, (5, 1, 32, 32))])
def test_odd_batch_raises(cfg, shape):
    model = _build(cfg)
    with pytest.raises(ValueError, match='batch size must be even'):
        model.loss(torch.randn(*shape), None)


def test_unmixing_reconstructs_both_images_targets():
    """Oracle decoder: each branch predicts its source image exactly."""
    head = MixMIMPlusPretrainHead(
        loss=dict(type='PixelReconstructionLoss', criterion='L2'),
        norm_pix=True,
        patch_size=4,
        in_channels=1)
    backbone = _build(VIT).backbone
    images = torch.randn(4, 1, 32, 32)
    target = head.construct_target(images)  # (B, 64, 16)
    mask = backbone.random_masking(images, 0.5)
    # branch 1 of sample i keeps image i; branch 2 keeps image B-1-i
    x_rec = torch.cat([target, target.flip(0)], dim=0)
    torch.testing.assert_close(head.unmix(x_rec, mask), target)
    assert head.loss(x_rec, images, mask) == 0


def test_unmixing_layout_with_identity_decoder():
    """Identity stand-in: each branch copies the mixed tokens it sees.

    Image i is supervised from branch 1 only where it is hidden in sample i
    (mask 1) and from its partner's branch 2 only where it is hidden there,
    so copying the visible tokens reconstructs the *partner* everywhere.
    """
    head = MixMIMPlusPretrainHead(
        loss=dict(type='PixelReconstructionLoss', criterion='L2'),
        patch_size=4,
        in_channels=1)
    backbone = _build(VIT).backbone
    tokens = torch.randn(4, 64, 16)
    mask = backbone.random_masking(tokens, 0.5)
    mixed = tokens * (1 - mask) + tokens.flip(0) * mask
    unmixed = head.unmix(torch.cat([mixed, mixed], dim=0), mask)
    torch.testing.assert_close(unmixed, tokens.flip(0))


def test_decoder_output_channels():
    model = _build(VIT)
    assert model.neck.decoder_pred.out_features == 4 * 4 * 1
    x_rec = model.neck(torch.randn(2, 64, 32), torch.zeros(1, 64, 1))
    assert x_rec.shape == (4, 64, 16)


def _linears(neck: nn.Module):
    return [m for m in neck.modules() if isinstance(m, nn.Linear)]


def test_decoder_official_init_is_xavier_everywhere():
    neck = _build(HIER).neck
    assert neck.init_mode == 'official'
    linears = _linears(neck)
    # embed, per block qkv/proj/fc1/fc2, prediction
    assert len(linears) == 2 + 4 * len(neck.decoder_blocks)
    for m in linears:
        bound = (6 / (m.in_features + m.out_features))**0.5
        assert m.weight.abs().max() <= bound + 1e-6
        # xavier-uniform fills its range, PyTorch's default is narrower
        assert m.weight.abs().max() > 0.9 * bound
        assert torch.count_nonzero(m.bias) == 0
    for m in neck.modules():
        if isinstance(m, nn.LayerNorm):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
    assert 0.01 < neck.mask_token.std() < 0.03


def test_decoder_mmpretrain_init_selectable():
    neck = _build(HIER, neck=dict(init_mode='mmpretrain')).neck
    # mmpretrain 1.2 leaves embedding/attention/prediction Linears at the
    # PyTorch default (non-zero uniform bias); only FFNs are xavier
    for m in (neck.decoder_embed, neck.decoder_pred,
              neck.decoder_blocks[0].attn.qkv):
        assert torch.count_nonzero(m.bias) > 0
        assert m.weight.abs().max() <= m.in_features**-0.5 + 1e-6


def _weight_decays(model: nn.Module, paramwise_cfg: dict) -> dict:
    optim_wrapper = build_optim_wrapper(
        model,
        dict(
            type='OptimWrapper',
            optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
            paramwise_cfg=paramwise_cfg))
    ids = {id(p): n for n, p in model.named_parameters()}
    return {
        ids[id(p)]: group['weight_decay']
        for group in optim_wrapper.optimizer.param_groups
        for p in group['params']
    }


@pytest.mark.parametrize('config', [
    'mixmim_mixmim-base_16xb128-coslr-300e_in1k.py',
    'mixmim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py'
])
def test_param_groups_official_no_decay_on_1d(config):
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs/mixmim', config))
    paramwise_cfg = cfg.optim_wrapper.paramwise_cfg.to_dict()
    for model in (_build(HIER), _build(VIT)):
        decays = _weight_decays(model, paramwise_cfg)
        for name, param in model.named_parameters():
            if not param.requires_grad:
                assert name not in decays
                continue
            expected = 0.0 if param.ndim == 1 else 0.05
            assert decays[name] == pytest.approx(expected), name
    decays = _weight_decays(_build(HIER), paramwise_cfg)
    # norms mmpretrain's 'ln' key misses, and the (3-D) mask token
    assert decays['backbone.norm.weight'] == 0
    assert decays['backbone.patch_embed.norm.weight'] == 0
    assert decays['backbone.layers.0.downsample.norm.weight'] == 0
    assert decays['neck.mask_token'] == pytest.approx(0.05)


def test_param_groups_mmpretrain_selectable():
    # paramwise_cfg of mmpretrain's mixmim_mixmim-base_16xb128-coslr-300e
    decays = _weight_decays(
        _build(HIER),
        dict(custom_keys={
            'ln': dict(decay_mult=0.0),
            'bias': dict(decay_mult=0.0)
        }))
    assert decays['backbone.layers.0.blocks.0.ln1.weight'] == 0
    assert decays['backbone.layers.0.blocks.0.attn.qkv.bias'] == 0
    # mmpretrain 1.2 decays the LayerNorms named `norm`
    assert decays['backbone.norm.weight'] == pytest.approx(0.05)
    assert decays['backbone.patch_embed.norm.weight'] == pytest.approx(0.05)


@pytest.mark.parametrize('cfg, overrides, match', [
    (HIER, dict(backbone=dict(mask_ratio=0.0)), 'mask_ratio'),
    (HIER, dict(backbone=dict(mask_ratio=1.0)), 'mask_ratio'),
    (HIER, dict(backbone=dict(range_mask_ratio=0.6)), 'range_mask_ratio'),
    (HIER, dict(backbone=dict(img_size=48)), 'img_size'),
    (HIER, dict(neck=dict(num_patches=9)), 'num_patches'),
    (HIER, dict(neck=dict(encoder_stride=16)), 'encoder_stride'),
    (VIT, dict(neck=dict(num_patches=16)), 'num_patches'),
    (VIT, dict(neck=dict(encoder_stride=8)), 'encoder_stride'),
    (VIT, dict(neck=dict(num_patches=60)), 'num_patches'),
    (VIT, dict(neck=dict(init_mode='xavier')), 'init_mode'),
])
def test_bad_config(cfg, overrides, match):
    with pytest.raises(ValueError, match=match):
        _build(cfg, **overrides)


def test_decoder_rejects_wrong_token_count():
    neck = MixMIMPlusPretrainDecoder(
        num_patches=4,
        embed_dim=8,
        decoder_embed_dim=8,
        decoder_depth=1,
        decoder_num_heads=1)
    with pytest.raises(ValueError, match='num_patches'):
        neck(torch.randn(2, 9, 8), torch.zeros(1, 9, 1))
