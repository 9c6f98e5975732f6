# Copyright (c) OpenMMLab. All rights reserved.
"""BIM with LocalMIM scale decoders: one decoder and one multi-scale HOG or
pixel target per block, trained block-wise."""
import copy
import os.path as osp

import pytest
import torch
from helpers import REPO_ROOT, TINY_ARCH
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

import mim_plugins  # noqa: F401
from mim_plugins.engine.optim_wrappers import BIMOptimWrapperConstructor

SCALES = (4, 2, 1, 0.5)


def decoder(scale, **kwargs):
    cfg = dict(
        type='LocalMIMDecoder',
        scale=scale,
        out_channels=9,
        num_patches=16,
        embed_dim=32,
        decoder_embed_dim=16,
        decoder_num_heads=2)
    cfg.update(kwargs)
    return cfg


def head(scale, **kwargs):
    cfg = dict(
        type='LocalMIMHead', patch_size=4, scales=[scale], in_channels=1)
    cfg.update(kwargs)
    return cfg


def backbone(block_boundaries):
    return dict(
        type='BIMViT',
        arch=copy.deepcopy(TINY_ARCH),
        img_size=16,
        patch_size=4,
        patch_cfg=dict(in_channels=1),
        block_boundaries=list(block_boundaries))


def build(block_boundaries=(1, 2, 3, 4), scales=SCALES, seed=0, **head_kw):
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(
            dict(
                type='BIM',
                backbone=backbone(block_boundaries),
                neck=[decoder(s) for s in scales],
                head=[head(s, **head_kw) for s in scales]))
    model.init_weights()
    return model


def images(n=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 16, 16, generator=g)


@pytest.mark.parametrize('block', [0, 1, 2, 3])
def test_gradient_isolation(block):
    """loss_block{k} reaches block k's layers, norm and decoder, and no
    other block's parameters."""
    model = build()
    losses = model.loss(images(), None)
    assert list(losses) == [f'loss_block{k + 1}' for k in range(4)]
    losses[f'loss_block{block + 1}'].backward()
    owned = 0
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if model.get_block_id(name) == block:
            owned += 1
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None or not p.grad.any(), name
    assert owned > 0


def test_block_loss_is_its_scale_loss():
    """Block k's loss is its LocalMIM head's loss of scale k on its own
    block output, whose target cells are patch_size / scale pixels."""
    model = build()
    torch.manual_seed(3)
    losses = model.loss(images(), None)
    torch.manual_seed(3)
    x, mask, ids_restore = model.backbone.forward_stem(images())
    for k, scale in enumerate(SCALES):
        x, latent = model.backbone.forward_block(x, k)
        pred = model.neck[k](latent, ids_restore)
        cells = int(4 * scale)**2  # 4x4 patches, scale x finer
        assert pred.shape == (2, cells, 9)
        assert model.head[k].cell_sizes == [int(4 / scale)]
        expected = model.head[k].loss([pred], images(), mask)['loss_scale0']
        torch.testing.assert_close(losses[f'loss_block{k + 1}'], expected)


def test_one_block_equals_localmim_with_one_tap():
    """K=1 BIM with a LocalMIM decoder is LocalMIM with one tap at the last
    layer (same weights, same mask): same loss, same gradients."""
    bim = build(block_boundaries=[4], scales=[1])
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        local = MODELS.build(
            dict(
                type='LocalMIM',
                backbone=dict(
                    {
                        k: v
                        for k, v in backbone([4]).items()
                        if k != 'block_boundaries'
                    },
                    type='LocalMIMViT',
                    out_indices=[3]),
                neck=dict(
                    type='LocalMIMNeck',
                    num_patches=16,
                    embed_dim=32,
                    out_channels=[9],
                    scales=[1],
                    decoder_embed_dim=16,
                    decoder_num_heads=2),
                head=head(1)))
    state = {}
    for key, value in bim.state_dict().items():
        key = key.replace('backbone.ln1.', 'backbone.tap_norms.0.')
        key = key.replace('neck.0.', 'neck.decoders.0.')
        key = key.replace('head.0.', 'head.')
        state[key] = value
    local.load_state_dict(state, strict=True)
    torch.manual_seed(5)
    a = bim.loss(images(), None)['loss_block1']
    torch.manual_seed(5)
    b = local.loss(images(), None)['loss_scale0']
    torch.testing.assert_close(a, b)
    a.backward()
    b.backward()
    grad = local.backbone.patch_embed.projection.weight.grad
    torch.testing.assert_close(bim.backbone.patch_embed.projection.weight.grad,
                               grad)


def test_train_step_steps_every_block_on_its_own_loss():
    model = build()
    optim = BIMOptimWrapperConstructor(
        dict(optimizer=dict(type='AdamW', lr=1e-3)))(
            model)
    before = [[p.detach().clone() for p in model.block_parameters(k)]
              for k in range(4)]
    log_vars = model.train_step(
        dict(inputs=images(), data_samples=None), optim)
    assert list(log_vars) == ['loss'
                              ] + [f'loss_block{k + 1}' for k in range(4)]
    assert all(torch.isfinite(v) for v in log_vars.values())
    assert all(p.grad is None for p in model.parameters())
    for k in range(4):
        assert any(not torch.equal(a, b)
                   for a, b in zip(before[k], model.block_parameters(k)))


def test_pixel_targets():
    """Pixel targets: block k predicts the (patch_size / scale)^2 pixels of
    each of its cells, and its loss is their masked mean squared error."""
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(
            dict(
                type='BIM',
                backbone=backbone((1, 2, 3, 4)),
                neck=[decoder(s, out_channels=int(4 / s)**2) for s in SCALES],
                head=[head(s, target='pixel', norm_pix=False)
                      for s in SCALES]))
    torch.manual_seed(3)
    losses = model.loss(images(), None)
    torch.manual_seed(3)
    x, mask, ids_restore = model.backbone.forward_stem(images())
    for k, scale in enumerate(SCALES):
        x, latent = model.backbone.forward_block(x, k)
        pred = model.neck[k](latent, ids_restore)
        cell = int(4 / scale)
        # (B, C, H, W) -> cells of cell x cell pixels in raster order
        target = images().unfold(2, cell, cell).unfold(3, cell, cell)
        target = target.reshape(2, -1, cell * cell)
        side = int(4 * scale)
        m = mask.float().reshape(2, 1, 4, 4)
        if scale >= 1:
            m = torch.nn.functional.interpolate(m, size=(side, side))
        else:
            m = torch.nn.functional.avg_pool2d(m, 2)
        m = m.flatten(1)
        err = ((pred - target)**2).mean(-1)
        expected = (err * m).sum() / m.sum()
        torch.testing.assert_close(losses[f'loss_block{k + 1}'], expected)


@pytest.mark.parametrize('neck, head_cfg, error, match', [
    (decoder(2), head(4), ValueError, r'`neck.scales`=\[2\]'),
    (decoder(4, out_channels=8), head(4), ValueError, r'`neck.out_channels`'),
    (decoder(4, num_patches=64), head(4), ValueError, r'`neck.num_patches`'),
    (decoder(4), head(4, patch_size=8), ValueError, r'`head.patch_size`'),
    (decoder(4),
     dict(
         type='MAEPretrainHead',
         patch_size=4,
         in_channels=1,
         loss=dict(type='PixelReconstructionLoss',
                   criterion='L2')), TypeError, r"`head.type`='LocalMIMHead'"),
    (dict(
        type='LocalMIMNeck',
        num_patches=16,
        embed_dim=32,
        out_channels=[9] * 4,
        decoder_embed_dim=16,
        decoder_num_heads=2), head(4), ValueError,
     r'one per tap \(a BIM block'),
])
def test_bad_decoder_at_build(neck, head_cfg, error, match):
    with pytest.raises(error, match=match):
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            MODELS.build(
                dict(
                    type='BIM',
                    backbone=backbone([4]),
                    neck=neck,
                    head=head_cfg))


@pytest.mark.parametrize('name, num_patches, widths', [
    ('bim-localmim_vit-base-p16_8xb512-amp-coslr-400e_in1k', 196, 768),
    ('bim-localmim_vit-large-p16_8xb512-amp-coslr-400e_in1k', 196, 1024),
    ('bim-localmim_vit-mini-p4_1xb256-coslr-10e_fashion-mnist', 64, 96),
    ('bim-localmim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist', 64, 192),
])
def test_configs(name, num_patches, widths):
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs', 'localmim', name + '.py'))
    assert cfg.model.type == 'BIM'
    assert cfg.optim_wrapper.constructor == 'BIMOptimWrapperConstructor'
    assert [n.scale for n in cfg.model.neck] == list(SCALES)
    assert [h.scales for h in cfg.model.head] == [[s] for s in SCALES]
    assert all(n.num_patches == num_patches and n.embed_dim == widths
               for n in cfg.model.neck)


@pytest.mark.parametrize('target', ['hog', 'pixel'])
def test_reconstruction_panels(target):
    """One picture per block at its own scale: the HOG prediction, or the
    composite of visible pixels and predicted cells."""
    from mim_plugins.visualization import reconstruct
    from mim_plugins.visualization.localmim import scale_panels
    if target == 'hog':
        model = build()
    else:
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            model = MODELS.build(
                dict(
                    type='BIM',
                    backbone=backbone((1, 2, 3, 4)),
                    neck=[
                        decoder(s, out_channels=int(4 / s)**2) for s in SCALES
                    ],
                    head=[
                        head(s, target='pixel', norm_pix=False) for s in SCALES
                    ]))
    panels = reconstruct(model, images(), seed=0)
    assert list(panels) == ['original', 'masked'
                            ] + [f'block{k + 1}' for k in range(4)] + ['mask']
    mask = panels['mask']
    torch.manual_seed(0)
    with torch.no_grad():
        model.eval()
        x, mask2, ids_restore = model.backbone.forward_stem(images())
        assert torch.equal(mask, mask2)
        for k in range(4):
            x, latent = model.backbone.forward_block(x, k)
            pred = model.neck[k](latent, ids_restore)
            drawn = scale_panels(model.head[k], 0, pred, images(), mask)
            key = 'HOG prediction' if target == 'hog' else 'composite'
            torch.testing.assert_close(panels[f'block{k + 1}'], drawn[key])
    if target == 'pixel':
        # the composite keeps the visible pixels
        visible = (panels['masked'] != 0)
        assert torch.equal(panels['block1'][visible], images()[visible])
