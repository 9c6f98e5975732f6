# Copyright (c) OpenMMLab. All rights reserved.
"""Bad-input matrix: every invalid setting of every plugin module.

Each row builds one plugin module through its registry (or its
constructor) with one invalid argument and checks that it fails at build
time with a ``ValueError``/``TypeError`` whose message names the field and
the allowed values. The only run-time row is MixMIM's odd batch, which a
config cannot reveal: it must fail at the first step, naming
``batch_size``.
"""
import copy
import re
from typing import Callable, Dict, List, Tuple, Type

import pytest
import torch
from helpers import TINY_HEAD, TINY_NECK, tiny_backbone
from mmengine.optim import OptimWrapper
from mmengine.registry import DefaultScope
from mmpretrain.registry import (HOOKS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS,
                                 OPTIM_WRAPPERS, TRANSFORMS)
from torch import nn

import mim_plugins  # noqa: F401
from mim_plugins.engine import BIMOptimWrapper

# Tiny, valid base configs; each row breaks exactly one field.
BIM_VIT = tiny_backbone('BIMViT', block_boundaries=[2, 4])
LOCALMIM_VIT = tiny_backbone('LocalMIMViT', out_indices=[0, 1, 2, 3])
LOCALMIM_SWIN = dict(
    type='LocalMIMSwin',
    arch=dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1]),
    img_size=64,
    window_size=2)
MIXMIM_VIT = tiny_backbone('MixMIMViT', cell_size=8)
MIXMIM_PYRAMID = dict(
    type='MixMIMPyramidTransformer',
    arch=dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1]),
    img_size=64,
    window_size=[4, 4, 4, 2])
PRMIM_NECK = dict(TINY_NECK, type='PRMIMPretrainDecoder', throw_ratio=0.25)
PRMIM_HEAD = dict(TINY_HEAD, type='PRMIMPretrainHead')
LOCALMIM_NECK = dict(
    type='LocalMIMNeck',
    num_patches=16,
    embed_dim=32,
    out_channels=[9, 9, 9, 9],
    decoder_embed_dim=16,
    decoder_num_heads=2)
LOCALMIM_DECODER = dict(
    type='LocalMIMDecoder',
    scale=1,
    out_channels=9,
    num_patches=16,
    embed_dim=32,
    decoder_embed_dim=16,
    decoder_num_heads=2)
LOCALMIM_SWIN_NECK = dict(
    type='LocalMIMSwinNeck',
    in_channels=[32, 64],
    grids=[4, 2],
    out_channels=[27, 27],
    decoder_embed_dim=16,
    decoder_num_heads=2)
LOCALMIM_SWIN_DECODER = dict(
    type='LocalMIMSwinDecoder',
    in_channels=32,
    grid=4,
    out_channels=27,
    decoder_embed_dim=16,
    decoder_num_heads=2)
LOCALMIM_HEAD = dict(type='LocalMIMHead', patch_size=4, in_channels=1)
MIXMIM_NECK = dict(
    type='MixMIMPlusPretrainDecoder',
    num_patches=16,
    in_chans=1,
    encoder_stride=4,
    embed_dim=32,
    decoder_embed_dim=16,
    decoder_depth=1,
    decoder_num_heads=2)
MIXMIM_HEAD = dict(
    type='MixMIMPlusPretrainHead',
    norm_pix=True,
    loss=dict(type='PixelReconstructionLoss', criterion='L2'))
BIM = dict(type='BIM', backbone=BIM_VIT, neck=TINY_NECK, head=TINY_HEAD)
PRMIM = dict(
    type='PRMIM',
    backbone=tiny_backbone(mask_ratio=0.75),
    neck=PRMIM_NECK,
    head=PRMIM_HEAD)
LOCALMIM = dict(
    type='LocalMIM',
    backbone=LOCALMIM_VIT,
    neck=LOCALMIM_NECK,
    head=LOCALMIM_HEAD)
MIXMIM = dict(
    type='MixMIMPlus', backbone=MIXMIM_VIT, neck=MIXMIM_NECK, head=MIXMIM_HEAD)
HIER_MIXMIM = dict(
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
    head=MIXMIM_HEAD)
LAYER_DECAY = dict(
    optimizer=dict(type='AdamW', lr=1e-3),
    paramwise_cfg=dict(layer_decay_rate=0.5))

# Registered plugin classes that take no argument that can be invalid.
NOTHING_TO_VALIDATE: Dict[str, str] = {
    'BIMDistributedDataParallel': 'wraps a built model (DDP arguments)',
    'RandomStateHook': 'a single bool flag',
}

COVERED = set()


def with_(base: dict, **changes) -> dict:
    """``base`` with ``changes``; dict values of sub-configs are merged."""
    cfg = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict) and \
                'type' not in value:
            cfg[key].update(copy.deepcopy(value))
        else:
            cfg[key] = copy.deepcopy(value)
    return cfg


def build(registry, cfg: dict) -> Callable[[], object]:
    """A callable building ``cfg`` in ``registry``."""
    return lambda: registry.build(copy.deepcopy(cfg))


def row(target: str, what: str, make: Callable[[], object],
        exc: Type[Exception], field: str, *allowed: str):
    """One matrix row; ``target`` is the class whose input is invalid."""
    COVERED.add(target)
    return pytest.param(make, exc, field, allowed, id=f'{target}-{what}')


def odd_batch_step() -> None:
    """Build MixMIMPlus and run one loss step on a batch of 3."""
    model = MODELS.build(copy.deepcopy(MIXMIM))
    model.loss(torch.randn(3, 1, 16, 16), [])


def odd_batch_backbone() -> None:
    """Mixing forward of MixMIMViT on a batch of 3."""
    MODELS.build(copy.deepcopy(MIXMIM_VIT))(torch.randn(3, 1, 16, 16))


def tiny_optim_wrapper() -> OptimWrapper:
    return OptimWrapper(torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=1.))


def layer_decay(rate) -> Callable[[], object]:
    cfg = with_(LAYER_DECAY, paramwise_cfg=dict(layer_decay_rate=rate))
    return lambda: OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(
            type='BackboneLayerDecayOptimWrapperConstructor',
            optim_wrapper_cfg=dict(optimizer=cfg['optimizer']),
            paramwise_cfg=cfg['paramwise_cfg']))


M, V, T = MODELS, ValueError, TypeError
UNIT = ('(0, 1)', )
ROWS: List[Tuple] = [
    # --- backbones ---
    row('BIMViT', 'mask_ratio-above-1',
        build(M, with_(BIM_VIT, mask_ratio=1.5)), V, '`mask_ratio`', *UNIT),
    row('BIMViT', 'mask_ratio-zero', build(M, with_(BIM_VIT, mask_ratio=0.)),
        V, '`mask_ratio`', *UNIT),
    row('BIMViT', 'mask_ratio-string',
        build(M, with_(BIM_VIT, mask_ratio='0.75')), T, '`mask_ratio`',
        'a number', *UNIT),
    row('BIMViT', 'block_boundaries-not-ending-at-depth',
        build(M, with_(BIM_VIT, block_boundaries=[1, 2])), V,
        'block_boundaries', 'strictly increasing', '[1, 4]'),
    row('BIMViT', 'block_boundaries-unsorted',
        build(M, with_(BIM_VIT, block_boundaries=[3, 2, 4])), V,
        'block_boundaries', 'strictly increasing'),
    row('BIMViT', 'block_boundaries-empty',
        build(M, with_(BIM_VIT, block_boundaries=[])), V, 'block_boundaries',
        'non-empty'),
    row('BIMViT', 'final_norm-false',
        build(M, with_(BIM_VIT, final_norm=False)), V, 'final_norm', 'True'),
    row('BIMViT', 'img_size-not-multiple-of-patch',
        build(M, with_(BIM_VIT, img_size=18)), V, '`img_size`',
        '`patch_size`=4'),
    row('LocalMIMViT', 'out_indices-out-of-range',
        build(M, with_(LOCALMIM_VIT, out_indices=[1, 4])), V, '`out_indices`',
        '[0, 3]'),
    row('LocalMIMViT', 'out_indices-unsorted',
        build(M, with_(LOCALMIM_VIT, out_indices=[3, 1])), V, '`out_indices`',
        'strictly increasing'),
    row('LocalMIMViT', 'mask_ratio-one',
        build(M, with_(LOCALMIM_VIT, mask_ratio=1.)), V, '`mask_ratio`',
        *UNIT),
    row('LocalMIMViT', 'final_norm-true',
        build(M, with_(LOCALMIM_VIT, final_norm=True)), V, '`final_norm`',
        'False'),
    row('LocalMIMViT', 'img_size-not-multiple-of-patch',
        build(M, with_(LOCALMIM_VIT, img_size=30)), V, '`img_size`',
        '`patch_size`=4'),
    row('LocalMIMSwin', 'mask_ratio-one',
        build(M, with_(LOCALMIM_SWIN, mask_ratio=1.)), V, '`mask_ratio`',
        *UNIT),
    row('LocalMIMSwin', 'mask_patch_size-not-multiple-of-token',
        build(M, with_(LOCALMIM_SWIN, mask_patch_size=24)), V,
        '`mask_patch_size`', 'multiple of the last stage token (32 px)'),
    row('LocalMIMSwin', 'window_size-not-dividing-stage-maps',
        build(M, with_(LOCALMIM_SWIN, window_size=3)), V, '`window_size`',
        'divide every stage map', 'stage 0 is 16x16'),
    row('LocalMIMSwin', 'out_indices-out-of-range',
        build(M, with_(LOCALMIM_SWIN, out_indices=[0, 4])), V, '`out_indices`',
        '[0, 3]'),
    row('LocalMIMSwin', 'out_after_downsample-false',
        build(M, with_(LOCALMIM_SWIN, out_after_downsample=False)), V,
        '`out_after_downsample`', 'True'),
    row('LocalMIMSwin', 'encoder_mode-unknown',
        build(M, with_(LOCALMIM_SWIN, encoder_mode='sparse')), V,
        '`encoder_mode`', "('visible', 'dense')"),
    row('MixMIMViT', 'mask_ratio-one',
        build(M, with_(MIXMIM_VIT, mask_ratio=1.)), V, '`mask_ratio`', *UNIT),
    row('MixMIMViT', 'range_mask_ratio-too-large',
        build(M, with_(MIXMIM_VIT, range_mask_ratio=0.6)), V,
        '`range_mask_ratio`', '< 1 - mask_ratio'),
    row('MixMIMViT', 'cell_size-not-multiple-of-patch',
        build(M, with_(MIXMIM_VIT, cell_size=6)), V, '`cell_size`',
        'multiple of `patch_size`=4'),
    row('MixMIMViT', 'img_size-not-multiple-of-cell',
        build(M, with_(MIXMIM_VIT, cell_size=12)), V, '`img_size`',
        'divisible by', '`cell_size`=12'),
    row('MixMIMViT', 'cell_size-one-cell',
        build(M, with_(MIXMIM_VIT, cell_size=16)), V, '`cell_size`',
        'at least 2 mixing cells'),
    row('MixMIMViT', 'img_size-not-multiple-of-patch',
        build(M, with_(MIXMIM_VIT, img_size=18, cell_size=4)), V, '`img_size`',
        '`patch_size`=4'),
    row('MixMIMViT', 'odd-batch-at-first-step', odd_batch_backbone, V,
        'batch_size', 'must be even', 'got 3'),
    row('MixMIMPyramidTransformer', 'window_size-wrong-length',
        build(M, with_(MIXMIM_PYRAMID, window_size=[4, 4, 4])), V,
        '`window_size`', 'list of 4 ints'),
    row('MixMIMPyramidTransformer', 'window_size-not-dividing-stage-maps',
        build(M, with_(MIXMIM_PYRAMID, window_size=[3, 3, 3, 3])), V,
        '`window_size`', 'divide every stage map', 'stage 0 is 16x16'),
    row('MixMIMPyramidTransformer', 'img_size-not-multiple-of-patch',
        build(M, with_(MIXMIM_PYRAMID, img_size=66)), V, '`img_size`',
        '`patch_size`=4'),
    row('MixMIMPyramidTransformer', 'out_indices-out-of-range',
        build(M, with_(MIXMIM_PYRAMID, out_indices=[4])), V, '`out_indices`',
        '[0, 3]'),
    row('MixMIMPyramidTransformer', 'frozen_stages-out-of-range',
        build(M, with_(MIXMIM_PYRAMID, frozen_stages=5)), V, '`frozen_stages`',
        '[-1, 4]'),
    # --- necks ---
    row('PRMIMPretrainDecoder', 'throw_ratio-one',
        build(M, with_(PRMIM_NECK, throw_ratio=1.)), V, '`throw_ratio`',
        '0 <= throw_ratio < 1'),
    row('PRMIMPretrainDecoder', 'throw_ratio-negative',
        build(M, with_(PRMIM_NECK, throw_ratio=-0.1)), V, '`throw_ratio`',
        '0 <= throw_ratio < 1'),
    row('PRMIMPretrainDecoder', 'sampling-unknown',
        build(M, with_(PRMIM_NECK, sampling='grid')), V, '`sampling`',
        "('furthest', 'random')"),
    row('PRMIMPretrainDecoder', 'thrown_path-unknown',
        build(M, with_(PRMIM_NECK, thrown_path='attention')), V,
        '`thrown_path`', "('progressive', 'none')"),
    row('PRMIMPretrainDecoder', 'num_waves-zero',
        build(M, with_(PRMIM_NECK, num_waves=0)), V, '`num_waves`',
        'int >= 1'),
    row('PRMIMPretrainDecoder', 'k-zero', build(M, with_(PRMIM_NECK, k=0)), V,
        '`k`', 'int >= 1'),
    row('PRMIMPretrainDecoder', 'num_patches-not-square',
        build(M, with_(PRMIM_NECK, num_patches=15)), V, '`num_patches`',
        'square number'),
    row('PRMIMPretrainDecoder', 'decoder_num_heads-not-dividing-width',
        build(M, with_(PRMIM_NECK, decoder_num_heads=3)), V,
        '`decoder_embed_dim`', 'divisible by `decoder_num_heads`=3'),
    row('LocalMIMNeck', 'scales-unknown',
        build(M, with_(LOCALMIM_NECK, scales=[4, 3, 1, 0.5])), V, '`scales`',
        '[4, 2, 1, 0.5]'),
    row('LocalMIMNeck', 'out_channels-wrong-length',
        build(M, with_(LOCALMIM_NECK, out_channels=[9, 9])), V,
        '`out_channels`', 'one target dimension per scale', '4 for scales'),
    row('LocalMIMDecoder', 'scale-unknown',
        build(M, with_(LOCALMIM_DECODER, scale=3)), V, '`scale`',
        '[4, 2, 1, 0.5]'),
    row('LocalMIMDecoder', 'scale4-width-not-multiple-of-4',
        build(M, with_(LOCALMIM_DECODER, scale=4, decoder_embed_dim=18)), V,
        '`decoder_embed_dim`', 'divisible by 4'),
    row('LocalMIMDecoder', 'decoder_num_heads-not-dividing-width',
        build(M, with_(LOCALMIM_DECODER, decoder_num_heads=3)), V,
        '`decoder_embed_dim`', 'divisible by `decoder_num_heads`=3'),
    row('LocalMIMSwinNeck', 'grids-wrong-length',
        build(M, with_(LOCALMIM_SWIN_NECK, grids=[4])), V, '`grids`',
        'one entry per tap', '2 `in_channels`'),
    row('LocalMIMSwinNeck', 'out_channels-wrong-length',
        build(M, with_(LOCALMIM_SWIN_NECK, out_channels=[27, 27, 27])), V,
        '`out_channels`', 'one entry per tap'),
    row('LocalMIMSwinDecoder', 'decoder_num_heads-not-dividing-width',
        build(M, with_(LOCALMIM_SWIN_DECODER, decoder_num_heads=3)), V,
        '`decoder_embed_dim`', 'divisible by `decoder_num_heads`=3'),
    row('MixMIMPlusPretrainDecoder', 'init_mode-unknown',
        build(M, with_(MIXMIM_NECK, init_mode='xavier')), V, '`init_mode`',
        "('official', 'mmpretrain')"),
    row('MixMIMPlusPretrainDecoder', 'num_patches-not-square',
        build(M, with_(MIXMIM_NECK, num_patches=15)), V, '`num_patches`',
        'square number'),
    row('MixMIMPlusPretrainDecoder', 'decoder_num_heads-not-dividing-width',
        build(M, with_(MIXMIM_NECK, decoder_num_heads=3)), V,
        '`decoder_embed_dim`', 'divisible by `decoder_num_heads`=3'),
    row(
        'PRMIMMixMIMPretrainDecoder', 'throw_ratio-above-1',
        build(
            M,
            with_(
                MIXMIM_NECK,
                type='PRMIMMixMIMPretrainDecoder',
                throw_ratio=1.5)), V, '`throw_ratio`', '0 <= throw_ratio < 1'),
    # --- heads and targets ---
    row('PRMIMPretrainHead', 'thrown_loss_weight-negative',
        build(M, with_(PRMIM_HEAD, thrown_loss_weight=-1.)), V,
        '`thrown_loss_weight`', '>= 0'),
    row('LocalMIMHead', 'target-unknown',
        build(M, with_(LOCALMIM_HEAD, target='rgb')), V, '`target`',
        "['hog', 'pixel']"),
    row('LocalMIMHead', 'scales-unknown',
        build(M, with_(LOCALMIM_HEAD, scales=[8, 1])), V, '`scales`',
        '[4, 2, 1, 0.5]'),
    row('LocalMIMHead', 'loss_weights-wrong-length',
        build(M, with_(LOCALMIM_HEAD, loss_weights=[1., 1.])), V,
        '`loss_weights`', 'one weight per scale (4)'),
    row('LocalMIMHead', 'patch_size-not-divisible-by-scale',
        build(M, with_(LOCALMIM_HEAD, patch_size=2)), V, '`patch_size`',
        'divisible by every scale'),
    row('LocalMIMHead', 'patch_size-zero',
        build(M, with_(LOCALMIM_HEAD, patch_size=0)), V, '`patch_size`',
        'an int >= 1'),
    row('LocalMIMHead', 'norm_pix-on-one-pixel-cells',
        build(M, with_(LOCALMIM_HEAD, target='pixel')), V, '`norm_pix`',
        'at least 2 values per cell'),
    row(
        'PRMIMMixMIMPretrainHead', 'thrown_loss_weight-negative',
        build(
            M,
            with_(
                MIXMIM_HEAD,
                type='PRMIMMixMIMPretrainHead',
                thrown_loss_weight=-1.)), V, '`thrown_loss_weight`', '>= 0'),
    row('MixMIMPlusPretrainHead', 'in_channels-zero',
        build(M, with_(MIXMIM_HEAD, in_channels=0)), V, '`in_channels`',
        'an int >= 1'),
    row('MixMIMPlusPretrainHead', 'patch_size-float',
        build(M, with_(MIXMIM_HEAD, patch_size=4.)), T, '`patch_size`',
        'an int >= 1'),
    row('HOGTarget', 'cell_size-zero',
        build(M, dict(type='HOGTarget', cell_size=0)), V, '`cell_size`',
        'positive int'),
    row('HOGTarget', 'n_bins-zero',
        build(M, dict(type='HOGTarget', cell_size=4, n_bins=0)), V, '`n_bins`',
        'positive int'),
    row('HOGTarget', 'gradient-unknown',
        build(M, dict(type='HOGTarget', cell_size=4, gradient='sobel')), V,
        '`gradient`', "'conv'", "'difference'"),
    # --- algorithms: parts that do not fit together ---
    row('BIM', 'neck-list-wrong-length',
        build(M, with_(BIM, neck=[TINY_NECK] * 3)), V, 'neck',
        'len(block_boundaries) == 2'),
    row('BIM', 'head-not-a-config', build(M, with_(BIM, head='MAEHead')), T,
        'head', 'a dict or a list of 2 dicts'),
    row('BIM', 'backbone-not-blockwise',
        build(M, with_(BIM, backbone=tiny_backbone())), T, 'backbone.type',
        '"BIMViT"'),
    row('BIM', 'neck-embed_dim-not-backbone-width',
        build(M, with_(BIM, neck=dict(embed_dim=16))), V, '`neck.embed_dim`',
        'backbone width 32'),
    row('BIM', 'neck-num_patches-not-backbone-grid',
        build(M, with_(BIM, neck=dict(num_patches=64))), V,
        '`neck.num_patches`', "backbone's 16 patches"),
    row('BIM', 'head-patch_size-not-backbone-patch',
        build(M, with_(BIM, head=dict(patch_size=8))), V, '`head.patch_size`',
        'backbone patch size 4'),
    row('BIM', 'head-in_channels-not-backbone-channels',
        build(M, with_(BIM, head=dict(in_channels=3))), V,
        '`head.in_channels`', 'backbone in_channels 1'),
    row('BIM', 'neck-prediction-size-not-patch',
        build(M, with_(BIM, neck=dict(in_chans=3))), V, '`neck.in_chans`',
        'must be 16'),
    row('PRMIM', 'throw_ratio-not-below-mask_ratio',
        build(M, with_(PRMIM, neck=dict(throw_ratio=0.8))), V, '`throw_ratio`',
        '0 <= throw_ratio < 12/16'),
    row('PRMIM', 'k-above-decoded-tokens',
        build(M, with_(PRMIM, neck=dict(k=100))), V, '`k`', '1 <= k <= 12'),
    row('PRMIM', 'backbone-mask_ratio-above-1',
        build(M, with_(PRMIM, backbone=dict(mask_ratio=1.5))), V,
        '`backbone.mask_ratio`', *UNIT),
    row('PRMIM', 'neck-num_patches-not-backbone-grid',
        build(M, with_(PRMIM, neck=dict(num_patches=64))), V,
        '`neck.num_patches`', "backbone's 16 patches"),
    row('PRMIM', 'neck-embed_dim-not-backbone-width',
        build(M, with_(PRMIM, neck=dict(embed_dim=64))), V, '`neck.embed_dim`',
        'backbone width 32'),
    row('PRMIM', 'neck-type-not-partial', build(M,
                                                with_(PRMIM, neck=TINY_NECK)),
        T, '`neck.type`', "'PRMIMPretrainDecoder'"),
    row('PRMIM', 'head-type-no-thrown-tokens',
        build(M, with_(PRMIM, head=TINY_HEAD)), T, '`head.type`',
        "'PRMIMPretrainHead'"),
    row('LocalMIM', 'taps-not-one-per-decoder',
        build(M, with_(LOCALMIM, backbone=dict(out_indices=[1, 3]))), V,
        '`backbone.out_indices`', 'one per tap'),
    row('LocalMIM', 'neck-out_channels-not-head-targets',
        build(M, with_(LOCALMIM, neck=dict(out_channels=[8, 8, 8, 8]))), V,
        '`neck.out_channels`', '[9, 9, 9, 9]'),
    row('LocalMIM', 'neck-embed_dim-not-backbone-width',
        build(M, with_(LOCALMIM, neck=dict(embed_dim=64))), V,
        '`neck.embed_dim`', 'backbone width 32'),
    row(
        'LocalMIM', 'head-patch_size-not-backbone-patch',
        build(
            M,
            with_(
                LOCALMIM,
                head=dict(patch_size=8),
                neck=dict(out_channels=[9] * 4))), V, '`head.patch_size`',
        "backbone's 4"),
    row('LocalMIM', 'neck-scales-not-head-scales',
        build(M, with_(LOCALMIM, neck=dict(scales=[2, 2, 1, 0.5]))), V,
        '`neck.scales`', '`head.scales`=[4, 2, 1, 0.5]'),
    row('LocalMIM', 'swin-neck-for-vit-backbone',
        build(M, with_(LOCALMIM, neck=LOCALMIM_SWIN_NECK)), T, '`neck.type`',
        "'LocalMIMNeck'"),
    row('LocalMIM', 'backbone-not-multi-tap',
        build(M, with_(LOCALMIM, backbone=tiny_backbone())), T,
        '`backbone.type`', "'LocalMIMViT' or 'LocalMIMSwin'"),
    row('MixMIMPlus', 'neck-num_patches-not-encoder-tokens',
        build(M, with_(MIXMIM, neck=dict(num_patches=64))), V,
        '`neck.num_patches`', '4x4=16 encoder tokens'),
    row('MixMIMPlus', 'neck-encoder_stride-not-token-size',
        build(M, with_(MIXMIM, neck=dict(encoder_stride=8))), V,
        '`neck.encoder_stride`', '4-px region'),
    row('MixMIMPlus', 'neck-embed_dim-not-encoder-width',
        build(M, with_(MIXMIM, neck=dict(embed_dim=16))), V,
        '`neck.embed_dim`', 'encoder output width 32'),
    row('MixMIMPlus', 'hierarchical-neck-embed_dim-not-last-stage',
        build(M, with_(HIER_MIXMIM, neck=dict(embed_dim=64))), V,
        '`neck.embed_dim`', 'encoder output width 128'),
    row('MixMIMPlus', 'backbone-mask_ratio-one',
        build(M, with_(HIER_MIXMIM, backbone=dict(mask_ratio=1.))), V,
        '`backbone.mask_ratio`', *UNIT),
    row('MixMIMPlus', 'backbone-not-mixing',
        build(M, with_(MIXMIM, backbone=tiny_backbone())), T,
        'MixMIMPlus needs a mixing backbone', "'MixMIMViT'"),
    row('MixMIMPlus', 'odd-batch-at-first-step', odd_batch_step, V,
        'batch_size', 'must be even', 'got 3'),
    # --- optimizer wrappers and constructors ---
    row(
        'BIMOptimWrapper', 'wrapper-names-not-block1-to-K',
        lambda: BIMOptimWrapper(
            block1=tiny_optim_wrapper(), block3=tiny_optim_wrapper()), V,
        'BIMOptimWrapper needs wrappers named', "['block1', 'block2']"),
    row(
        'BIMOptimWrapperConstructor', 'model-not-blockwise',
        lambda: OPTIM_WRAPPER_CONSTRUCTORS.build(
            dict(
                type='BIMOptimWrapperConstructor',
                optim_wrapper_cfg=dict(optimizer=dict(type='SGD', lr=1.))))
        (nn.Linear(2, 2)), T, '`model.type`', "'BIM'"),
    row('BackboneLayerDecayOptimWrapperConstructor',
        'layer_decay_rate-above-1', layer_decay(1.5), V,
        '`paramwise_cfg.layer_decay_rate`', 'in (0, 1]'),
    row('BackboneLayerDecayOptimWrapperConstructor', 'layer_decay_rate-zero',
        layer_decay(0.), V, '`paramwise_cfg.layer_decay_rate`', 'in (0, 1]'),
    row(
        'CPUAmpOptimWrapper', 'dtype-float16', lambda: OPTIM_WRAPPERS.build(
            dict(type='CPUAmpOptimWrapper', dtype='float16'),
            default_args=dict(optimizer=tiny_optim_wrapper().optimizer)), V,
        'optim_wrapper.dtype', '"bfloat16"'),
    # --- hooks and transforms ---
    row('NonFiniteLossHook', 'action-unknown',
        build(HOOKS, dict(type='NonFiniteLossHook', action='ignore')), V,
        'action', "('stop', 'skip')"),
    row('TrainBudgetHook', 'unit-unknown',
        build(HOOKS, dict(type='TrainBudgetHook', budget=1, unit='minutes')),
        V, '`unit`', "('seconds', 'flops', 'epochs')"),
    row('TrainBudgetHook', 'flops-without-cost',
        build(HOOKS, dict(type='TrainBudgetHook', budget=1, unit='flops')),
        V, "unit='flops'", 'flops_per_iter > 0'),
    row('ReconstructionVisualizationHook', 'interval-zero',
        build(HOOKS, dict(type='ReconstructionVisualizationHook', interval=0)),
        V, '`interval`', 'an int >= 1'),
    row(
        'ReconstructionVisualizationHook', 'interval-string',
        build(HOOKS,
              dict(type='ReconstructionVisualizationHook', interval='100')), T,
        '`interval`', 'an int >= 1'),
    row(
        'ReconstructionVisualizationHook', 'num_images-zero',
        build(HOOKS,
              dict(type='ReconstructionVisualizationHook', num_images=0)), V,
        '`num_images`', 'an int >= 1'),
    row('FeatureEvalHook', 'eval_epochs-empty',
        build(HOOKS, dict(type='FeatureEvalHook', eval_epochs=[])), V,
        'eval_epochs', 'non-empty list of epochs >= 0'),
    row('FeatureEvalHook', 'eval_epochs-negative',
        build(HOOKS, dict(type='FeatureEvalHook', eval_epochs=[-1, 5])), V,
        'eval_epochs', 'non-empty list of epochs >= 0'),
    row('FeatureEvalHook', 'knn_k-zero',
        build(HOOKS, dict(type='FeatureEvalHook', eval_epochs=[1], knn_k=0)),
        V, '`knn_k`', 'an int >= 1'),
    row(
        'FeatureEvalHook', 'train_samples-negative',
        build(HOOKS,
              dict(type='FeatureEvalHook', eval_epochs=[1], train_samples=-5)),
        V, '`train_samples`', 'an int >= 0'),
    row(
        'FeatureEvalHook', 'probe_epochs-float',
        build(HOOKS,
              dict(type='FeatureEvalHook', eval_epochs=[1], probe_epochs=1.5)),
        T, '`probe_epochs`', 'an int >= 0'),
    row(
        'LoadImageFromFileChecked', 'skip_corrupt-string',
        build(TRANSFORMS,
              dict(type='LoadImageFromFileChecked', skip_corrupt='yes')), T,
        '`skip_corrupt`', 'a bool'),
]


@pytest.mark.parametrize('make, exc, field, allowed', ROWS)
def test_bad_input(make: Callable[[], object], exc: Type[Exception],
                   field: str, allowed: Tuple[str, ...]) -> None:
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        with pytest.raises(exc, match=re.escape(field)) as info:
            make()
    message = str(info.value)
    for fragment in allowed:
        assert fragment in message, (fragment, message)


def test_base_configs_are_valid() -> None:
    """Every row breaks a valid config: the unbroken bases build."""
    bases = [
        BIM_VIT, LOCALMIM_VIT, LOCALMIM_SWIN, MIXMIM_VIT, MIXMIM_PYRAMID,
        PRMIM_NECK, PRMIM_HEAD, LOCALMIM_NECK, LOCALMIM_DECODER,
        LOCALMIM_SWIN_NECK, LOCALMIM_SWIN_DECODER, LOCALMIM_HEAD, MIXMIM_NECK,
        MIXMIM_HEAD, BIM, PRMIM, LOCALMIM, MIXMIM, HIER_MIXMIM
    ]
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        for cfg in bases:
            assert isinstance(MODELS.build(copy.deepcopy(cfg)), nn.Module)
        # an even batch steps fine where the odd one fails
        model = MODELS.build(copy.deepcopy(MIXMIM))
        losses = model.loss(torch.randn(4, 1, 16, 16), [])
        assert all(torch.isfinite(v) for v in losses.values())
        layer_decay(1.)()
        layer_decay(0.65)()


def test_every_plugin_module_has_a_row() -> None:
    """New plugin modules must join the matrix (or say why not)."""
    registered = set()
    for registry in (MODELS, OPTIM_WRAPPERS, OPTIM_WRAPPER_CONSTRUCTORS, HOOKS,
                     TRANSFORMS):
        for name, cls in registry.module_dict.items():
            if getattr(cls, '__module__', '').startswith('mim_plugins'):
                registered.add(name)
    missing = registered - COVERED - set(NOTHING_TO_VALIDATE)
    assert not missing, f'no bad-input row for {sorted(missing)}'
    assert COVERED <= registered
