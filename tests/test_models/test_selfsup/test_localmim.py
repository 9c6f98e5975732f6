# Copyright (c) OpenMMLab. All rights reserved.
"""LocalMIM algorithm: taps, decoders, shapes, gradients, config checks."""
import copy

import pytest
import torch
from mmpretrain.registry import MODELS

import mim_plugins  # noqa: F401
from mim_plugins.models.backbones import LocalMIMViT
from mim_plugins.models.necks import LocalMIMDecoder

ARCH = dict(embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64)
BACKBONE = dict(
    type='LocalMIMViT',
    arch=ARCH,
    img_size=16,
    patch_size=4,
    patch_cfg=dict(in_channels=1),
    out_indices=[0, 1, 2, 3])
NECK = dict(
    type='LocalMIMNeck',
    num_patches=16,
    embed_dim=32,
    out_channels=[9, 9, 9, 9],
    decoder_embed_dim=16,
    decoder_num_heads=2)
HEAD = dict(type='LocalMIMHead', patch_size=4, in_channels=1)


def build(backbone=None, neck=None, head=None, seed=0):
    torch.manual_seed(seed)
    cfg = dict(
        type='LocalMIM',
        backbone=copy.deepcopy(BACKBONE),
        neck=copy.deepcopy(NECK),
        head=copy.deepcopy(HEAD))
    for key, extra in (('backbone', backbone), ('neck', neck), ('head', head)):
        cfg[key].update(extra or {})
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def images(n=2, size=16, seed=1):
    return torch.randn(
        n, 1, size, size, generator=torch.Generator().manual_seed(seed))


def test_default_taps():
    vit = LocalMIMViT(arch='deit-tiny', img_size=32, patch_size=4)
    assert vit.out_indices == [1, 3, 9, 11]  # [1, 3, L-3, L-1]
    assert len(vit.tap_norms) == 4
    assert not vit.final_norm and not hasattr(vit, 'ln1')


def test_tap_features_and_prediction_shapes():
    model = build()
    x = images()
    latents, mask, ids_restore = model.backbone(x)
    assert len(latents) == 4
    assert all(t.shape == (2, 1 + 4, 32) for t in latents)  # cls + 4 vis
    assert mask.shape == (2, 16) and mask.sum() == 2 * 12
    preds = model.neck(latents, ids_restore)
    # x4 / x2 / x1 / x1/2 of the 4x4 patch grid
    assert [p.shape for p in preds] == [(2, 256, 9), (2, 64, 9), (2, 16, 9),
                                        (2, 4, 9)]
    targets = model.head.construct_targets(x)
    assert [t.shape for t in targets] == [p.shape for p in preds]
    # the tap outputs are the layer outputs through their own norms
    torch.manual_seed(3)
    lat_a, _, _ = model.backbone(x)
    torch.manual_seed(3)
    h, _, _ = model.backbone.random_masking(
        model.backbone.patch_embed(x)[0] + model.backbone.pos_embed[:, 1:],
        0.75)
    cls = (model.backbone.cls_token + model.backbone.pos_embed[:, :1])
    h = torch.cat([cls.expand(2, -1, -1), h], dim=1)
    for i, layer in enumerate(model.backbone.layers):
        h = layer(h)
        torch.testing.assert_close(lat_a[i], model.backbone.tap_norms[i](h))


def test_scale_heads():
    dec = LocalMIMDecoder(
        scale=4, out_channels=27, num_patches=196, embed_dim=768)
    kinds = [type(m).__name__ for m in dec.pred]
    assert kinds == [
        'ConvTranspose2d', 'LayerNorm2d', 'GELU', 'ConvTranspose2d', 'Conv2d'
    ]
    assert dec.pred[0].out_channels == 128 and dec.pred[3].out_channels == 64
    assert len(dec.decoder_blocks) == 1
    assert dec.decoder_embed.out_features == 256
    assert not dec.decoder_pos_embed.requires_grad  # fixed sin-cos
    kinds = {
        s: [
            type(m).__name__ for m in LocalMIMDecoder(
                scale=s, out_channels=27, num_patches=196, embed_dim=768).pred
        ]
        for s in (2, 1, 0.5)
    }
    assert kinds == {
        2: ['ConvTranspose2d', 'Conv2d'],
        1: ['Conv2d'],
        0.5: ['AvgPool2d', 'Conv2d']
    }


def test_loss_and_gradients_reach_every_tap():
    model = build()
    losses = model(images(), [None, None], mode='loss')
    assert sorted(losses) == [f'loss_scale{k}' for k in range(4)]
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    bb = model.backbone
    for i in bb.out_indices:
        assert bb.layers[i].attn.qkv.weight.grad.abs().sum() > 0
    for norm in bb.tap_norms:
        assert norm.weight.grad.abs().sum() > 0
    assert bb.patch_embed.projection.weight.grad.abs().sum() > 0
    assert bb.cls_token.grad.abs().sum() > 0
    for dec in model.neck.decoders:
        assert dec.mask_token.grad.abs().sum() > 0
        assert dec.pred[-1].weight.grad.abs().sum() > 0
    missing = [
        n for n, p in model.named_parameters()
        if p.requires_grad and p.grad is None
    ]
    assert missing == []


def test_lowest_tap_gradient_comes_from_every_decoder():
    # deep supervision without stop-gradient: the finest-scale loss alone
    # trains layer 0, and the coarsest alone also reaches it
    for k in (0, 3):
        model = build()
        losses = model.loss(images(), [])
        losses[f'loss_scale{k}'].backward()
        assert model.backbone.layers[0].attn.qkv.weight.grad.abs().sum() > 0


def test_loss_equals_reference_computation():
    model = build()
    x = images()
    torch.manual_seed(5)
    losses = model.loss(x, [])
    torch.manual_seed(5)
    latents, mask, ids_restore = model.backbone(x)
    preds = model.neck(latents, ids_restore)
    targets = model.head.construct_targets(x)
    grid = mask.reshape(2, 4, 4)
    soft = grid.reshape(2, 2, 2, 2, 2).mean((2, 4)).reshape(2, 4)
    masks = [
        grid.repeat_interleave(4, 1).repeat_interleave(4, 2).reshape(2, -1),
        grid.repeat_interleave(2, 1).repeat_interleave(2, 2).reshape(2, -1),
        mask, soft
    ]
    for k in range(4):
        ref = (((preds[k] - targets[k])**2).mean(-1) *
               masks[k]).sum() / masks[k].sum()
        torch.testing.assert_close(losses[f'loss_scale{k}'], ref)


def test_extract_feat():
    model = build()
    feats = model.extract_feat(images())
    assert len(feats) == 4 and all(f.shape == (2, 17, 32) for f in feats)


def test_pixel_targets():
    model = build(
        neck=dict(out_channels=[4, 16, 64], scales=[2, 1, 0.5]),
        backbone=dict(out_indices=[1, 2, 3]),
        head=dict(target='pixel', scales=[2, 1, 0.5]))
    losses = model.loss(images(), [])
    assert sorted(losses) == ['loss_scale0', 'loss_scale1', 'loss_scale2']
    # layer 0 is below every tap but still trained through the taps above
    sum(losses.values()).backward()
    assert model.backbone.layers[0].attn.qkv.weight.grad is not None


def test_bad_config():
    with pytest.raises(ValueError, match='out_indices'):
        build(backbone=dict(out_indices=[0, 1, 2, 4]))  # out of range
    with pytest.raises(ValueError, match='out_indices'):
        build(backbone=dict(out_indices=[0, 2, 1, 3]))  # not increasing
    with pytest.raises(ValueError, match='out_indices'):
        build(backbone=dict(out_indices=None))  # 4 layers: [1, 3, 1, 3]
    with pytest.raises(ValueError, match='final_norm'):
        build(backbone=dict(final_norm=True))
    with pytest.raises(ValueError, match='out_indices'):
        build(backbone=dict(out_indices=[1, 2, 3]))  # 3 taps, 4 scales
    with pytest.raises(ValueError, match='out_channels'):
        build(neck=dict(out_channels=[9, 9]))
    with pytest.raises(ValueError, match='out_channels'):
        build(neck=dict(out_channels=[27] * 4))  # head gives 9-dim HOG
    with pytest.raises(ValueError, match='scales'):
        build(neck=dict(scales=[4, 2, 1, 3]))
    with pytest.raises(ValueError, match='scales'):
        build(neck=dict(scales=[4, 2, 1, 1]))  # head keeps 4, 2, 1, .5
    with pytest.raises(ValueError, match='target'):
        build(head=dict(target='hug'))
    with pytest.raises(ValueError, match='img_size'):
        # 20 px = 5x5 patches: not divisible by the 8-px cells of x1/2
        build(backbone=dict(img_size=20), neck=dict(num_patches=25))
    with pytest.raises(ValueError, match='num_patches'):
        build(neck=dict(num_patches=64))
    with pytest.raises(TypeError, match='LocalMIMViT'):
        build(backbone=dict(type='MAEViT', out_indices=-1))
