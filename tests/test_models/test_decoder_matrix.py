# Copyright (c) OpenMMLab. All rights reserved.
"""Every decoder under every algorithm it supports, through the one decoder
interface (``decoder_loss``/``check_decoder``), and a clear build-time error
for the pairs that make no sense."""
import copy

import pytest
import torch
from legacy_models import (MAE_HEAD, MAE_NECK, MIX_HEAD, MIX_NECK, MODELS_CFGS,
                           PR_HEAD, PR_NECK, VIT, inputs)
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

import mim_plugins  # noqa: F401

LOCAL_DECODER = dict(
    type='LocalMIMDecoder',
    scale=2,
    out_channels=9,
    num_patches=16,
    embed_dim=32,
    decoder_embed_dim=16,
    decoder_num_heads=2)
LOCAL_HEAD = dict(type='LocalMIMHead', patch_size=4, scales=[2], in_channels=1)
BIM_VIT = dict(VIT, type='BIMViT', block_boundaries=[2, 4])

# algorithm x decoder -> the loss names it logs
PAIRS = dict(
    mae_decoder_in_prmim=(dict(
        type='PRMIM',
        backbone=dict(VIT, type='MAEViT'),
        neck=MAE_NECK,
        head=MAE_HEAD), ['loss']),
    prmim=(MODELS_CFGS['prmim'],
           ['loss_kept', 'loss_thrown', 'mse_kept', 'mse_thrown']),
    mae_decoders_in_bim=(MODELS_CFGS['bim'], ['loss_block1', 'loss_block2']),
    mae_and_prmim_decoders_in_bim=(MODELS_CFGS['bim_prmim'], [
        'loss_block1', 'loss_block2', 'mse_kept_block2', 'mse_thrown_block2'
    ]),
    localmim_decoders_in_bim=(dict(
        type='BIM', backbone=BIM_VIT, neck=LOCAL_DECODER,
        head=LOCAL_HEAD), ['loss_block1', 'loss_block2']),
    localmim_and_prmim_decoders_in_bim=(dict(
        type='BIM',
        backbone=BIM_VIT,
        neck=[LOCAL_DECODER, PR_NECK],
        head=[LOCAL_HEAD, PR_HEAD]), [
            'loss_block1', 'loss_block2', 'mse_kept_block2',
            'mse_thrown_block2'
        ]),
    localmim_vit=(MODELS_CFGS['localmim'],
                  [f'loss_scale{k}' for k in range(4)]),
    localmim_swin=(MODELS_CFGS['localmim_swin'],
                   [f'loss_scale{k}' for k in range(4)]),
    mixmim=(MODELS_CFGS['mixmim'], ['loss']),
    mixmim_prmim=(MODELS_CFGS['mixmim_prmim'],
                  ['loss_kept', 'loss_thrown', 'mse_kept', 'mse_thrown']),
)


def build(cfg):
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(copy.deepcopy(cfg))
    model.init_weights()
    return model


@pytest.mark.parametrize('name', list(PAIRS))
def test_loss_and_gradient_flow(name):
    cfg, names = PAIRS[name]
    model = build(cfg)
    x = inputs('localmim_swin' if name == 'localmim_swin' else name)
    losses = model.loss(x, None)
    assert list(losses) == names
    total = sum(v for k, v in losses.items() if k.startswith('loss'))
    assert torch.isfinite(total)
    total.backward()
    # the gradient reaches the input layer and every trainable decoder
    # weight matrix (norm and bias terms may be untouched by design)
    embed = model.backbone.patch_embed.projection.weight.grad
    assert embed is not None and embed.abs().sum() > 0
    for pname, p in model.neck.named_parameters():
        if p.requires_grad and p.dim() > 1 and 'mask_token' not in pname:
            assert p.grad is not None and p.grad.abs().sum() > 0, pname


MIX = dict(VIT, type='MixMIMViT', cell_size=8)


@pytest.mark.parametrize(
    'cfg, error, match',
    [
        # MixMIM mixes two images per sample: nothing is masked for an MAE or
        # LocalMIM decoder to fill in
        (dict(type='MixMIMPlus', backbone=MIX, neck=MAE_NECK,
              head=MIX_HEAD), TypeError, r'a decoder of both mixed branches'),
        (dict(
            type='MixMIMPlus',
            backbone=MIX,
            neck=LOCAL_DECODER,
            head=LOCAL_HEAD), TypeError,
         r"'MixMIMPlusPretrainDecoder' or 'PRMIMMixMIMPretrainDecoder', got "
         r"'LocalMIMDecoder'"),
        # and a MixMIM decoder has no branch to unmix after MAE's masking
        (dict(type='BIM', backbone=BIM_VIT, neck=MIX_NECK, head=MIX_HEAD),
         TypeError, r"decodes 'mixed' encoder outputs, but the backbone's are "
         r"'masked'"),
        # LocalMIM's taps are several outputs: a one-output decoder cannot read
        # them (one decoder per tap is LocalMIMNeck)
        (dict(MODELS_CFGS['localmim'], neck=PR_NECK, head=PR_HEAD), ValueError,
         r'reads one encoder output, the backbone gives 4'),
        (dict(
            type='BIM',
            backbone=BIM_VIT,
            neck=MODELS_CFGS['localmim_swin']['neck'],
            head=LOCAL_HEAD), TypeError, r"'LocalMIMSwinNeck'.*"
         r"decodes 'swin'"),
        # a head made for another decoder
        (dict(type='BIM', backbone=BIM_VIT, neck=MAE_NECK, head=LOCAL_HEAD),
         TypeError, r"`head.type`='LocalMIMHead' needs its own decoder"),
    ])
def test_pairs_that_make_no_sense_fail_at_build(cfg, error, match):
    with pytest.raises(error, match=match):
        build(cfg)
