# Copyright (c) OpenMMLab. All rights reserved.
"""Tiny models of every algorithm and decoder, for the checkpoint fixture.

``python tests/test_models/legacy_models.py OUT.pth`` builds each model,
computes its training losses on seeded images and masks and saves the state
dicts with the losses. ``fixtures/tiny_models_52f78a4.pth`` was written so
at commit 52f78a4, before the decoders shared one loss interface;
``test_legacy_checkpoints.py`` loads it into today's modules.
"""
import copy
import sys
from typing import Dict

import torch
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

# 16-px single-channel images in 4-px patches: 16 tokens, 32-wide encoders
ARCH = dict(embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64)
VIT = dict(arch=ARCH, img_size=16, patch_size=4, patch_cfg=dict(in_channels=1))
MAE_NECK = dict(
    type='MAEPretrainDecoder',
    num_patches=16,
    patch_size=4,
    in_chans=1,
    embed_dim=32,
    decoder_embed_dim=16,
    decoder_depth=1,
    decoder_num_heads=2)
MAE_HEAD = dict(
    type='MAEPretrainHead',
    norm_pix=True,
    patch_size=4,
    in_channels=1,
    loss=dict(type='PixelReconstructionLoss', criterion='L2'))
PR_NECK = dict(MAE_NECK, type='PRMIMPretrainDecoder', throw_ratio=0.5)
PR_HEAD = dict(MAE_HEAD, type='PRMIMPretrainHead')
MIX_NECK = dict(
    type='MixMIMPlusPretrainDecoder',
    num_patches=16,
    in_chans=1,
    encoder_stride=4,
    embed_dim=32,
    decoder_embed_dim=16,
    decoder_depth=1,
    decoder_num_heads=2)
MIX_HEAD = dict(
    type='MixMIMPlusPretrainHead',
    norm_pix=True,
    loss=dict(type='PixelReconstructionLoss', criterion='L2'))

MODELS_CFGS: Dict[str, dict] = dict(
    prmim=dict(
        type='PRMIM',
        backbone=dict(VIT, type='MAEViT'),
        neck=PR_NECK,
        head=PR_HEAD),
    bim=dict(
        type='BIM',
        backbone=dict(VIT, type='BIMViT', block_boundaries=[2, 4]),
        neck=MAE_NECK,
        head=MAE_HEAD),
    bim_prmim=dict(
        type='BIM',
        backbone=dict(VIT, type='BIMViT', block_boundaries=[2, 4]),
        neck=[MAE_NECK, PR_NECK],
        head=[MAE_HEAD, PR_HEAD]),
    localmim=dict(
        type='LocalMIM',
        backbone=dict(VIT, type='LocalMIMViT', out_indices=[0, 1, 2, 3]),
        neck=dict(
            type='LocalMIMNeck',
            num_patches=16,
            embed_dim=32,
            out_channels=[9, 9, 9, 9],
            decoder_embed_dim=16,
            decoder_num_heads=2),
        head=dict(type='LocalMIMHead', patch_size=4, in_channels=1)),
    localmim_swin=dict(
        type='LocalMIM',
        backbone=dict(
            type='LocalMIMSwin',
            arch=dict(
                embed_dims=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2]),
            img_size=128,
            window_size=4,
            drop_path_rate=0.),
        neck=dict(
            type='LocalMIMSwinNeck',
            in_channels=[16, 32, 64, 64],
            grids=[16, 8, 4, 4],
            out_channels=[27] * 4,
            decoder_embed_dim=16,
            decoder_num_heads=2),
        head=dict(
            type='LocalMIMHead',
            patch_size=32,
            scales=[4, 2, 1, 1],
            in_channels=3)),
    mixmim=dict(
        type='MixMIMPlus',
        backbone=dict(VIT, type='MixMIMViT', cell_size=8),
        neck=MIX_NECK,
        head=MIX_HEAD),
    mixmim_prmim=dict(
        type='MixMIMPlus',
        backbone=dict(VIT, type='MixMIMViT', cell_size=8),
        neck=dict(
            MIX_NECK, type='PRMIMMixMIMPretrainDecoder', throw_ratio=0.25),
        head=dict(MIX_HEAD, type='PRMIMMixMIMPretrainHead')),
)


def build(name: str, seed: int = 0) -> torch.nn.Module:
    """Build and initialise the tiny model ``name`` with a seed."""
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(copy.deepcopy(MODELS_CFGS[name]))
    model.init_weights()
    return model


def inputs(name: str) -> torch.Tensor:
    """Seeded images of the size and channels the model ``name`` takes."""
    g = torch.Generator().manual_seed(1)
    if name == 'localmim_swin':
        return torch.randn(2, 3, 128, 128, generator=g)
    return torch.randn(4, 1, 16, 16, generator=g)


def losses(model: torch.nn.Module, name: str) -> Dict[str, torch.Tensor]:
    """Training losses of ``model`` on :func:`inputs`, masks seeded."""
    torch.manual_seed(2)
    with torch.no_grad():
        out = model.loss(inputs(name), None)
    return {k: v.detach().clone() for k, v in out.items()}


def main(out: str) -> None:
    import mim_plugins  # noqa: F401
    fixture = {}
    for name in MODELS_CFGS:
        model = build(name)
        # move every weight off its init so that a wrong mapping shows
        with torch.no_grad():
            g = torch.Generator().manual_seed(3)
            for p in model.parameters():
                p.add_(0.01 * torch.randn(p.shape, generator=g))
        fixture[name] = dict(
            state_dict={
                k: v.clone()
                for k, v in model.state_dict().items()
            },
            losses=losses(model, name))
    torch.save(fixture, out)


if __name__ == '__main__':
    main(sys.argv[1])
