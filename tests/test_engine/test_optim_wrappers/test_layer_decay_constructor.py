# Copyright (c) OpenMMLab. All rights reserved.
import pytest
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from torch import nn

import mim_plugins  # noqa: F401

TINY_VIT = dict(
    type='mmpretrain.VisionTransformer',
    arch=dict(
        embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64),
    img_size=32,
    patch_size=8,
    out_type='featmap',
    out_indices=(1, 3),
    final_norm=False)

OPTIM = dict(
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
    constructor='mmpretrain.BackboneLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        layer_decay_rate=0.5,
        norm_decay_mult=0.0,
        custom_keys={'pos_embed': dict(decay_mult=0.)}))


def lr_of(optim_wrapper, name):
    for group in optim_wrapper.optimizer.param_groups:
        if group['param_name'] == name:
            return group['lr'], group['weight_decay']
    raise KeyError(name)


class Detector(nn.Module):
    """A model without get_layer_depth whose backbone has it."""

    def __init__(self):
        super().__init__()
        from mmpretrain.registry import MODELS
        self.backbone = MODELS.build(TINY_VIT)
        self.head = nn.Linear(32, 2)


def test_decay_through_the_backbone():
    with DefaultScope.overwrite_default_scope('mmdet'):
        wrapper = build_optim_wrapper(Detector(), OPTIM)
    # 4 layers -> depths 0 (stem) .. 5 (head); scale = 0.5 ** (5 - depth)
    assert lr_of(wrapper, 'backbone.patch_embed.projection.weight')[0] == \
        pytest.approx(1e-3 * 0.5**5)
    assert lr_of(wrapper, 'backbone.layers.0.attn.qkv.weight')[0] == \
        pytest.approx(1e-3 * 0.5**4)
    assert lr_of(wrapper, 'backbone.layers.3.ffn.layers.1.weight')[0] == \
        pytest.approx(1e-3 * 0.5**1)
    assert lr_of(wrapper, 'head.weight') == (pytest.approx(1e-3), 0.05)
    # decay multipliers still apply
    assert lr_of(wrapper, 'backbone.layers.0.ln1.weight')[1] == 0.0
    assert lr_of(wrapper, 'backbone.pos_embed')[1] == 0.0


def test_mmseg_segmentor_with_vit():
    from mmseg.registry import MODELS as SEG_MODELS
    cfg = dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', size=(32, 32)),
        backbone=TINY_VIT,
        neck=dict(type='Feature2Pyramid', embed_dim=32, rescales=[2, 1]),
        decode_head=dict(
            type='FCNHead',
            in_channels=32,
            in_index=1,
            channels=16,
            num_convs=1,
            num_classes=3,
            norm_cfg=dict(type='BN', requires_grad=True)))
    with DefaultScope.overwrite_default_scope('mmseg'):
        import mmseg.models  # noqa: F401
        model = SEG_MODELS.build(cfg)
        wrapper = build_optim_wrapper(model, OPTIM)
    assert lr_of(wrapper, 'backbone.layers.1.attn.qkv.weight')[0] == \
        pytest.approx(1e-3 * 0.5**3)
    assert lr_of(wrapper, 'decode_head.conv_seg.weight')[0] == \
        pytest.approx(1e-3)


def test_without_layer_depth_is_an_error():

    class NoDepth(nn.Module):

        def __init__(self):
            super().__init__()
            self.backbone = nn.Linear(2, 2)

    with pytest.raises(NotImplementedError, match='get_layer_depth'):
        build_optim_wrapper(NoDepth(), OPTIM)
