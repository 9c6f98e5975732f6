# Copyright (c) OpenMMLab. All rights reserved.
"""MixMIM (plain ViT) with PR-MIM partial decoders in both branches."""
import copy
import os.path as osp
import random

import pytest
import torch
from conftest import REPO_ROOT
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

import mim_plugins  # noqa: F401
from mim_plugins.models import MixMIMPlus

# tiny plain-ViT MixMIM: 32 px gray, patch 4 (64 tokens), 8-px cells (4x4
# cells, 8 mixed): each branch reconstructs 32 tokens
PLAIN = dict(
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


def partial_cfg(throw_ratio: float = 0.25, **neck) -> dict:
    cfg = copy.deepcopy(PLAIN)
    cfg['neck'].update(
        type='PRMIMMixMIMPretrainDecoder', throw_ratio=throw_ratio, **neck)
    cfg['head'].update(type='PRMIMMixMIMPretrainHead')
    return cfg


def build(cfg: dict, seed: int = 0) -> MixMIMPlus:
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(copy.deepcopy(cfg))
    model.init_weights()
    return model


def images(n: int = 4, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 32, 32, generator=g)


def seeded_loss(model: MixMIMPlus, x: torch.Tensor, seed: int = 7) -> dict:
    # the mixing mask draws from torch and Python's random
    torch.manual_seed(seed)
    random.seed(seed)
    return model.loss(x, None)


def test_throw_zero_equals_plain_mixmim():
    """With throw_ratio=0 the loss is plain MixMIM(ViT)'s, bit for bit."""
    plain = build(PLAIN)
    partial = build(partial_cfg(0.), seed=3)
    partial.load_state_dict(plain.state_dict())
    x = images()
    ref = seeded_loss(plain, x)['loss']
    out = seeded_loss(partial, x)
    assert set(out) == {'loss_kept', 'mse_kept'}
    assert torch.equal(out['loss_kept'], ref)


def test_kept_and_thrown_counts():
    """Each branch decodes visible + kept tokens; kept/thrown split its
    reconstructed tokens, furthest-sampled from its visible cells."""
    model = build(partial_cfg(0.25))
    seen = []
    model.neck.decoder_blocks[0].register_forward_pre_hook(
        lambda m, args: seen.append(args[0].shape))
    torch.manual_seed(0)
    latent, mask = model.backbone(images())
    x_rec, kept, thrown = model.neck(latent, mask)
    # 64 tokens, 16 thrown per branch: 48 decoded in each of the 2x4 rows
    assert seen == [(8, 48, 32)]
    assert x_rec.shape == (8, 64, 16)
    mixed = mask.reshape(-1).bool()
    for branch, reconstructed in enumerate([mixed, ~mixed]):
        assert int(reconstructed.sum()) == 32
        assert int(kept[branch].sum()) == 16
        assert int(thrown[branch].sum()) == 16
        # kept and thrown split exactly the tokens the branch reconstructs
        assert torch.equal((kept[branch] + thrown[branch]).bool(),
                           reconstructed)
    # furthest sampling only depends on the mask: the same split again
    _, kept2, thrown2 = model.neck(latent, mask)
    assert torch.equal(kept, kept2) and torch.equal(thrown, thrown2)


def test_loss_is_mean_over_all_tokens_at_unit_weight():
    """loss_kept + loss_thrown (w=1) is the mean error over every token of
    the unmixed prediction, thrown tokens predicted by the thrown path."""
    model = build(partial_cfg(0.25))
    x = images()
    out = seeded_loss(model, x)
    torch.manual_seed(7)
    random.seed(7)
    latent, mask = model.backbone(x)
    x_rec, _, _ = model.neck(latent, mask)
    head = model.head
    full = head.loss_module(head.unmix(x_rec, mask), head.construct_target(x))
    torch.testing.assert_close(out['loss_kept'] + out['loss_thrown'], full)
    # half of every image's tokens were thrown in their branch
    torch.testing.assert_close(out['loss_kept'], out['mse_kept'] / 2)
    torch.testing.assert_close(out['loss_thrown'], out['mse_thrown'] / 2)


def test_thrown_loss_reaches_decoder_and_encoder():
    model = build(partial_cfg(0.25))
    seeded_loss(model, images())['loss_thrown'].backward()
    assert model.neck.decoder_blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    assert model.neck.mask_token.grad.abs().sum() > 0
    assert model.backbone.patch_embed.projection.weight.grad.abs().sum() > 0


def test_nothrown_path_supervises_kept_only():
    model = build(partial_cfg(0.25, thrown_path='none'))
    out = seeded_loss(model, images())
    assert set(out) == {'loss_kept', 'mse_kept'}
    torch.testing.assert_close(out['loss_kept'], out['mse_kept'])


def test_train_step():
    model = build(partial_cfg(0.25))
    optim = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-3))
    before = [p.detach().clone() for p in model.parameters()]
    log_vars = model.train_step(
        dict(inputs=images(), data_samples=None), optim)
    assert torch.isfinite(log_vars['loss'])
    torch.testing.assert_close(log_vars['loss'],
                               log_vars['loss_kept'] + log_vars['loss_thrown'])
    changed = [
        not torch.equal(a, b) for a, b in zip(before, model.parameters())
    ]
    assert sum(changed) > len(changed) // 2


def _hierarchical_partial() -> dict:
    cfg = partial_cfg(0.25)
    cfg['backbone'] = dict(
        type='MixMIMPretrainTransformer',
        arch=dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 4]),
        img_size=64,
        window_size=[4, 4, 4, 2],
        mask_ratio=0.5)
    cfg['neck'].update(
        num_patches=4, encoder_stride=32, embed_dim=128, in_chans=3, k=1)
    return cfg


@pytest.mark.parametrize('cfg,error,match', [
    (partial_cfg(0.5), ValueError, r'`throw_ratio`.*mask_ratio'),
    (partial_cfg(0.25, k=49), ValueError, r'`k`'),
    (dict(partial_cfg(), head=PLAIN['head']), TypeError, r'`head.type`'),
    (dict(partial_cfg(), neck=PLAIN['neck']), TypeError, r'`neck.type`'),
    (_hierarchical_partial(), TypeError, r'MixMIMViT'),
])
def test_bad_config_at_build(cfg, error, match):
    with pytest.raises(error, match=match):
        build(cfg)


def test_range_mask_ratio_bounds_throw():
    # mixing up to 0.5 + 0.3 leaves a branch only 4 of 16 cells (16
    # tokens): throw 0.25 (16 tokens) leaves none, 0.2 (12) leaves 4
    cfg = partial_cfg(0.25)
    cfg['backbone'].update(range_mask_ratio=0.3)
    with pytest.raises(ValueError, match='range_mask_ratio'):
        build(cfg)
    cfg = partial_cfg(0.2)
    cfg['backbone'].update(range_mask_ratio=0.3)
    build(cfg)


@pytest.mark.parametrize('name,build_it', [
    ('mixmim-prmim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist', True),
    ('mixmim-prmim_vit-base-p16_16xb128-coslr-300e_in1k', False),
])
def test_configs(name, build_it):
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs', 'prmim', f'{name}.py'))
    assert cfg.model.type == 'MixMIMPlus'
    assert cfg.model.backbone.type == 'MixMIMViT'
    assert cfg.model.neck.type == 'PRMIMMixMIMPretrainDecoder'
    assert cfg.model.neck.throw_ratio == 0.25
    assert cfg.model.head.type == 'PRMIMMixMIMPretrainHead'
    if build_it:
        model = build(cfg.model)
        assert model.neck.num_thrown(64) == 16


def test_reconstruction_panels():
    """The MixMIM pictures take the prediction out of the decoder tuple."""
    from mim_plugins.visualization.mixmim import mixmim_panels
    model = build(partial_cfg(0.25)).eval()
    with torch.no_grad():
        panels = mixmim_panels(model, images())
    assert panels['reconstruction'].shape == (4, 1, 32, 32)
    assert torch.isfinite(panels['reconstruction']).all()
