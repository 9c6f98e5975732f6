# Copyright (c) OpenMMLab. All rights reserved.
"""MixMIM (plain ViT and hierarchical) with PR-MIM partial decoders in both
branches."""
import copy
import os.path as osp
import random
from typing import Optional

import pytest
import torch
from helpers import REPO_ROOT
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


def partial_cfg(throw_ratio: float = 0.25,
                base: Optional[dict] = None,
                **neck) -> dict:
    """``base`` (default: the plain-ViT MixMIM) with the PR-MIM decoder."""
    cfg = copy.deepcopy(PLAIN if base is None else base)
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


@pytest.mark.parametrize('cfg,error,match', [
    (partial_cfg(0.5), ValueError, r'`throw_ratio`.*mask_ratio'),
    (partial_cfg(0.25, k=49), ValueError, r'`k`'),
    (dict(partial_cfg(), head=PLAIN['head']), TypeError, r'`head.type`'),
    (dict(partial_cfg(), neck=PLAIN['neck']), TypeError, r'`neck.type`'),
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


@pytest.mark.parametrize('name,backbone,build_it', [
    ('mixmim-prmim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist', 'MixMIMViT',
     True),
    ('mixmim-prmim_vit-base-p16_16xb128-coslr-300e_in1k', 'MixMIMViT', False),
    ('mixmim-prmim_mixmim-base_16xb128-coslr-300e_in1k',
     'MixMIMPretrainTransformer', False),
])
def test_configs(name, backbone, build_it):
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs', 'prmim', f'{name}.py'))
    assert cfg.model.type == 'MixMIMPlus'
    assert cfg.model.backbone.type == backbone
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


# tiny hierarchical MixMIM: 96 px RGB, patch 4, 4 stages (3x3 grid of 32-px
# decoder tokens, one per mixing cell). mask_ratio 0.5 mixes int(4.5) = 4
# cells, so branch 1 reconstructs 4 and branch 2 5 (MixMIM-B: 24 and 25)
HIER = dict(
    type='MixMIMPlus',
    backbone=dict(
        type='MixMIMPretrainTransformer',
        arch=dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 4]),
        img_size=96,
        window_size=[4, 4, 3, 3],
        mask_ratio=0.5),
    neck=dict(
        type='MixMIMPlusPretrainDecoder',
        num_patches=9,
        in_chans=3,
        encoder_stride=32,
        embed_dim=128,
        decoder_embed_dim=32,
        decoder_depth=1,
        decoder_num_heads=2),
    head=dict(
        type='MixMIMPlusPretrainHead',
        norm_pix=True,
        loss=dict(type='PixelReconstructionLoss', criterion='L2')))


def hier_partial_cfg(throw_ratio: float = 0.25, **neck) -> dict:
    return partial_cfg(throw_ratio, base=HIER, **neck)


def rgb_images(n: int = 4, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 96, 96, generator=g)


def encode(model: MixMIMPlus, x: torch.Tensor, seed: int = 7):
    torch.manual_seed(seed)
    random.seed(seed)
    return model.backbone(x)


@pytest.mark.parametrize('hierarchical', [False, True])
def test_throw_zero_equals_plain_mixmim(hierarchical):
    """With throw_ratio=0 the loss is plain MixMIM's (ViT or hierarchical),
    bit for bit."""
    base = HIER if hierarchical else PLAIN
    plain = build(base)
    partial = build(partial_cfg(0., base=base), seed=3)
    partial.load_state_dict(plain.state_dict())
    x = rgb_images() if hierarchical else images()
    ref = seeded_loss(plain, x)['loss']
    out = seeded_loss(partial, x)
    assert set(out) == {'loss_kept', 'mse_kept'}
    assert torch.equal(out['loss_kept'], ref)


def test_hierarchical_decodes_visible_and_kept_cells():
    """Each branch's decoder sequence is exactly its visible cells plus its
    kept cells, in cell order, once each; kept and thrown split the cells
    the branch reconstructs."""
    model = build(hier_partial_cfg(0.25))
    neck = model.neck
    seen = []
    neck.decoder_blocks[0].register_forward_pre_hook(
        lambda m, args: seen.append(args[0].detach()))
    x = rgb_images()
    with torch.no_grad():
        latent, mask = encode(model, x)
        x_rec, kept, thrown = neck(latent, mask)
    B, L = 4, 9
    # mask as mmpretrain's backbone returns it; head patchify at 32 px
    assert mask.shape == (1, L, 1)
    assert model.head.patch_size == 32
    assert x_rec.shape == (2 * B, L, 32 * 32 * 3)
    assert model.head.patchify(x).shape == x_rec[:B].shape
    (seq, ) = seen
    assert seq.shape == (2 * B, L - 2, 32)  # int(9 * 0.25) = 2 thrown

    # every decoder input row is the token of one cell: the embedded
    # encoder token (visible) or the mask token, plus the cell's position
    with torch.no_grad():
        emb = neck.decoder_embed(latent)
        mt = neck.mask_token.expand(B, L, -1)
        tokens = torch.cat(
            [emb * (1 - mask) + mt * mask, emb * mask + mt * (1 - mask)])
        tokens = tokens + neck.decoder_pos_embed
    match = (seq[:, :, None] == tokens[:, None]).all(-1)  # (2B, 7, L)
    assert (match.sum(-1) == 1).all()
    cells = match.int().argmax(-1)

    mixed = mask.reshape(-1).bool()
    for branch, reconstructed in enumerate([mixed, ~mixed]):
        assert int(reconstructed.sum()) == (4, 5)[branch]
        k, t = kept[branch].bool(), thrown[branch].bool()
        assert int(t.sum()) == 2 and int(k.sum()) == (2, 3)[branch]
        assert not (k & t).any()
        assert torch.equal(k | t, reconstructed)  # never a visible cell
        decoded = (~reconstructed | k).nonzero().flatten()
        rows = cells[branch * B:(branch + 1) * B]
        # ascending cell order, so no cell is decoded twice
        assert (rows.diff(dim=1) > 0).all()
        assert torch.equal(rows, decoded.expand(B, -1))


def _reference_furthest(visible: list, num: int, side: int) -> set:
    """Greedy farthest-point picks on a side x side grid (ties: lowest
    index), written out cell by cell."""
    picked, chosen = list(visible), set()
    for _ in range(num):
        best, best_d = None, -1
        for c in range(side * side):
            if c in picked:
                continue
            d = min((c // side - p // side)**2 + (c % side - p % side)**2
                    for p in picked)
            if d > best_d:
                best, best_d = c, d
        picked.append(best)
        chosen.add(best)
    return chosen


def test_mixmim_base_neck_on_7x7_grid():
    """The MixMIM-B config's neck: 12 of 49 thrown per branch, 37 decoded,
    kept cells furthest-sampled on the 7x7 grid of 32-px cells."""
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs', 'prmim',
                 'mixmim-prmim_mixmim-base_16xb128-coslr-300e_in1k.py'))
    neck_cfg = cfg.model.neck
    # MixMIM.__init__ hands the head the neck's stride: 32-px patchify
    assert neck_cfg.encoder_stride == 32 and neck_cfg.num_patches == 49
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        torch.manual_seed(0)
        neck = MODELS.build(neck_cfg.to_dict())
    assert neck.grid_size == (7, 7)
    assert neck.num_thrown() == 12
    # int(49 * 0.5) = 24 cells taken from the partner
    torch.manual_seed(0)
    mixed_cells = torch.randperm(49)[:24]
    mask = torch.zeros(1, 49, 1)
    mask[0, mixed_cells] = 1
    seen = []
    neck.decoder_blocks[0].register_forward_pre_hook(
        lambda m, args: seen.append(args[0].shape))
    with torch.no_grad():
        x_rec, kept, thrown = neck(torch.randn(2, 49, 1024), mask)
    assert seen == [(4, 37, 512)]
    assert x_rec.shape == (4, 49, 32 * 32 * 3)
    mixed = mask.reshape(-1).bool()
    for branch, reconstructed in enumerate([mixed, ~mixed]):
        num = (24, 25)[branch]
        assert int(thrown[branch].sum()) == 12
        assert int(kept[branch].sum()) == num - 12
        visible = (~reconstructed).nonzero().flatten().tolist()
        expected = _reference_furthest(visible, num - 12, 7)
        assert set(kept[branch].nonzero().flatten().tolist()) == expected


def test_hierarchical_thrown_gradient_only_through_thrown_path():
    """Thrown cells never enter the decoder: the decoded predictions are
    those of plain partial reconstruction, and the thrown loss reaches the
    model only through the thrown cells' predictions."""
    model = build(hier_partial_cfg(0.25))
    no_path = build(hier_partial_cfg(0.25, thrown_path='none'), seed=3)
    no_path.load_state_dict(model.state_dict())
    x = rgb_images()
    latent, mask = encode(model, x)
    x_rec, kept, thrown = model.neck(latent, mask)
    x_none, kept2, thrown2 = no_path.neck(latent, mask)
    assert torch.equal(kept, kept2) and torch.equal(thrown, thrown2)
    B = x.shape[0]
    rows_thrown = thrown.repeat_interleave(B, dim=0).bool()  # (2B, L)
    assert torch.equal(x_rec[~rows_thrown], x_none[~rows_thrown])
    assert not x_none[rows_thrown].any()

    out = model.head.loss(x_rec, x, mask, kept, thrown)
    g_thrown, = torch.autograd.grad(
        out['loss_thrown'], x_rec, retain_graph=True)
    g_kept, = torch.autograd.grad(out['loss_kept'], x_rec, retain_graph=True)
    # per branch and sample, the loss touches exactly those cells
    assert torch.equal(g_thrown.abs().sum(-1) > 0, rows_thrown)
    assert torch.equal(g_kept.abs().sum(-1) > 0,
                       kept.repeat_interleave(B, dim=0).bool())
    # the thrown path mixes decoded features: the loss still trains the
    # decoder, the mask token and the encoder
    out['loss_thrown'].backward()
    assert model.neck.decoder_blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    assert model.neck.mask_token.grad.abs().sum() > 0
    assert model.backbone.patch_embed.projection.weight.grad.abs().sum() > 0


def test_hierarchical_train_step():
    model = build(hier_partial_cfg(0.25))
    optim = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-3))
    before = [p.detach().clone() for p in model.parameters()]
    log_vars = model.train_step(
        dict(inputs=rgb_images(), data_samples=None), optim)
    assert torch.isfinite(log_vars['loss'])
    torch.testing.assert_close(log_vars['loss'],
                               log_vars['loss_kept'] + log_vars['loss_thrown'])
    changed = [
        not torch.equal(a, b) for a, b in zip(before, model.parameters())
    ]
    assert sum(changed) > len(changed) // 2


def test_hierarchical_throw_bound():
    """The bound follows mmpretrain's masking on the 3x3 grid: a branch may
    reconstruct only int(9 * 0.5) = 4 cells, so throw_ratio < 4/9 (0.45
    passes min(mask_ratio, 1 - mask_ratio) = 0.5 but throws all 4)."""
    build(hier_partial_cfg(0.44))  # throws int(3.96) = 3
    with pytest.raises(
            ValueError,
            match=r'`throw_ratio`=0\.45 throws 4 of the 4 tokens.*'
            r'0 <= throw_ratio < 4/9'):
        build(hier_partial_cfg(0.45))
    # mixing up to int(9 * 0.8) = 7 cells leaves branch 2 only 2
    cfg = hier_partial_cfg(0.25)
    cfg['backbone'].update(range_mask_ratio=0.3)
    with pytest.raises(ValueError, match=r'range_mask_ratio=0\.3.*< 2/9'):
        build(cfg)
    cfg['neck'].update(throw_ratio=0.2)  # int(1.8) = 1 thrown
    build(cfg)
    # int(9 * 0.1) = 0 mixed cells: branch 1 has nothing to reconstruct
    cfg = hier_partial_cfg(0.)
    cfg['backbone'].update(mask_ratio=0.1)
    with pytest.raises(ValueError, match=r'`backbone.mask_ratio`.*1/9'):
        build(cfg)


def test_hierarchical_reconstruction_panels():
    """The MixMIM pictures unpatchify the 32-px cells of the partial
    decoder's prediction."""
    from mim_plugins.visualization.mixmim import mixmim_panels
    model = build(hier_partial_cfg(0.25)).eval()
    with torch.no_grad():
        panels = mixmim_panels(model, rgb_images())
    assert panels['reconstruction'].shape == (4, 3, 96, 96)
    assert torch.isfinite(panels['reconstruction']).all()
