# Copyright (c) OpenMMLab. All rights reserved.
"""LocalMIM on Swin: batch-shared mask, stage taps, no leakage, checks."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS

import mim_plugins  # noqa: F401

# 128 px, patch 4: stage maps 32/16/8/4, taps after merging 16/8/4/4;
# 32-px mask cells: a 4x4 mask grid.
BACKBONE = dict(
    type='LocalMIMSwin',
    arch=dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4]),
    img_size=128,
    window_size=4,
    drop_path_rate=0.)
NECK = dict(
    type='LocalMIMSwinNeck',
    in_channels=[32, 64, 128, 128],
    grids=[16, 8, 4, 4],
    out_channels=[27] * 4,
    decoder_embed_dim=32,
    decoder_num_heads=2)
HEAD = dict(
    type='LocalMIMHead', patch_size=32, scales=[4, 2, 1, 1], in_channels=3)


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


def images(n=2, seed=1):
    return torch.randn(
        n, 3, 128, 128, generator=torch.Generator().manual_seed(seed))


def visible_at(mask, grid):
    m = 1 - mask[:1].reshape(1, 1, 4, 4)
    return F.interpolate(m, size=(grid, grid)).flatten().bool()


def test_batch_shared_mask_and_shapes():
    model = build()
    x = images()
    latents, mask, ids_restore = model.backbone(x)
    assert ids_restore is None
    assert mask.shape == (2, 16) and torch.equal(mask[0], mask[1])
    assert mask[0].sum() == int(0.75 * 16) + 1  # official `<=` count
    assert [t.shape for t in latents] == [(2, 256, 32), (2, 64, 64),
                                          (2, 16, 128), (2, 16, 128)]
    preds = model.neck(latents, mask)
    targets = model.head.construct_targets(x)  # cells 8, 16, 32, 32 px
    assert [p.shape for p in preds] == [(2, 256, 27), (2, 64, 27), (2, 16, 27),
                                        (2, 16, 27)]
    assert [t.shape for t in targets] == [p.shape for p in preds]
    m4, m2, m1, m1b = model.head.construct_masks(mask, (4, 4))
    assert torch.equal(m1, mask) and torch.equal(m1b, mask)
    grid = mask.reshape(2, 4, 4)
    assert torch.equal(
        m4,
        grid.repeat_interleave(4, 1).repeat_interleave(4, 2).reshape(2, -1))


def test_masked_cells_do_not_leak_into_visible_tokens():
    model = build(backbone=dict(encoder_mode='dense')).eval()
    x = images()
    torch.manual_seed(3)
    lat, mask, _ = model.backbone(x)
    hidden = F.interpolate(
        mask[:1].reshape(1, 1, 4, 4), scale_factor=32).bool()[0, 0]
    x2 = x.clone()
    x2[:, :, hidden] = torch.randn_like(x2[:, :, hidden])
    torch.manual_seed(3)
    lat2, mask2, _ = model.backbone(x2)
    assert torch.equal(mask, mask2)
    for a, b, g in zip(lat, lat2, [16, 8, 4, 4]):
        vis = visible_at(mask, g)
        torch.testing.assert_close(a[:, vis], b[:, vis])
        assert not torch.allclose(a[:, ~vis], b[:, ~vis])
    # control: without the attention mask the change does reach them
    full, full2 = model.backbone(x, mask=None), model.backbone(x2, mask=None)
    vis = visible_at(mask, 4)
    assert not torch.allclose(full[2].flatten(2)[..., vis],
                              full2[2].flatten(2)[..., vis])
    # and the decoders only read visible tokens
    preds = model.neck(lat, mask)
    noisy = [t.clone() for t in lat]
    for t, g in zip(noisy, [16, 8, 4, 4]):
        t[:, ~visible_at(mask, g)] = 1e3
    for p, q in zip(preds, model.neck(noisy, mask)):
        torch.testing.assert_close(p, q)


def test_loss_and_gradients_reach_every_stage():
    model = build()
    losses = model(images(), [None, None], mode='loss')
    assert sorted(losses) == [f'loss_scale{k}' for k in range(4)]
    sum(losses.values()).backward()
    bb = model.backbone
    for i in range(4):
        assert getattr(bb, f'norm{i}').weight.grad.abs().sum() > 0
        qkv = bb.stages[i].blocks[0].attn.w_msa.qkv.weight
        assert qkv.grad.abs().sum() > 0
    assert bb.patch_embed.projection.weight.grad.abs().sum() > 0
    assert all(dec.mask_token.grad.abs().sum() > 0
               for dec in model.neck.decoders)
    assert model.neck.decoders[0].decoder_embed.out_features == 16  # halved
    missing = [
        n for n, p in model.named_parameters()
        if p.requires_grad and p.grad is None
    ]
    assert missing == []


def test_pixel_targets():
    model = build(
        neck=dict(out_channels=[192, 768, 3072, 3072]),
        head=dict(target='pixel'))
    losses = model.loss(images(), [])
    assert all(torch.isfinite(v) for v in losses.values())


def test_bad_config():
    with pytest.raises(ValueError, match='out_after_downsample'):
        build(backbone=dict(out_after_downsample=False))
    with pytest.raises(ValueError, match='out_indices'):
        build(backbone=dict(out_indices=[0, 2, 1, 3]))
    with pytest.raises(ValueError, match='mask_patch_size'):
        build(backbone=dict(mask_patch_size=16))  # last token is 32 px
    with pytest.raises(ValueError, match='in_channels'):
        build(neck=dict(in_channels=[32, 64, 128, 256]))
    with pytest.raises(ValueError, match='grids'):
        build(neck=dict(grids=[16, 8, 4, 2]))
    with pytest.raises(ValueError, match='grids'):
        build(neck=dict(grids=[16, 8, 4]))
    with pytest.raises(ValueError, match='patch_size'):
        build(head=dict(patch_size=16, scales=[2, 1, 0.5, 0.5]))
    with pytest.raises(ValueError, match='out_channels'):
        build(neck=dict(out_channels=[54] * 4))
