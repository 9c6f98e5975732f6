# Copyright (c) OpenMMLab. All rights reserved.
"""LocalMIMSwin's visible-only encoder against its attention-masked one."""
import copy
from typing import Dict, List, Tuple

import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import mim_plugins  # noqa: F401
from mim_plugins.models.backbones.localmim_swin import ENCODER_MODES

TINY_SWIN = dict(
    type='LocalMIMSwin',
    arch=dict(embed_dims=32, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8]),
    drop_path_rate=0.)
# name -> (extra backbone settings, image side)
CASES: Dict[str, Tuple[dict, int]] = {
    # patch 2, maps 32/16/8/4, window 4, 16-px cells (a 4x4 grid): the
    # plain windows lie inside cells, the shifted ones straddle up to four;
    # the 4x4 last map is one window, so its second block is not shifted
    'w4': (dict(img_size=64, patch_size=2, window_size=4,
                mask_patch_size=16), 64),
    # maps 24/12/6/3 with window 3 on 8-token cells: even the plain windows
    # straddle cells, so visible counts per window differ in every block
    'w3-straddle':
    (dict(img_size=48, patch_size=2, window_size=3, mask_patch_size=16), 48),
    # per-stage windows as the window-14 Swin-L at 224 px (maps 56/28/14/7,
    # windows 14/14/14/7): window 8 on maps 32/16/8, window 4 on the last
    # 4x4 map; the one-window maps (8x8, 4x4) run unshifted
    'w8-last-w4': (dict(
        img_size=64,
        patch_size=2,
        window_size=8,
        mask_patch_size=16,
        stage_cfgs=[dict(), dict(),
                    dict(), dict(window_size=4)]), 64),
    # pad_small_map keeps the shift (and its mask) on one-window maps
    'w4-pad-small-map': (dict(
        img_size=64,
        patch_size=2,
        window_size=4,
        mask_patch_size=16,
        pad_small_map=True), 64),
}


def build_pair(extra: dict,
               dtype: torch.dtype = torch.float32,
               **changes) -> Tuple[nn.Module, nn.Module]:
    """A dense and a visible encoder with the same (random) weights."""
    models = []
    for mode in ('dense', 'visible'):
        cfg = dict(copy.deepcopy(TINY_SWIN), **extra, **changes)
        models.append(MODELS.build(dict(cfg, encoder_mode=mode)))
        models[-1].eval()  # train mode (drop path) only where asked
    dense, visible = models
    torch.manual_seed(0)
    for name, param in dense.named_parameters():
        if 'relative_position_bias_table' in name:
            # zero by default: make a wrong bias gather visible
            nn.init.normal_(param, std=0.5)
    visible.load_state_dict(dense.state_dict())
    return dense.to(dtype), visible.to(dtype)


def images(side: int, dtype=torch.float32, n: int = 2) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, side, side, generator=gen).to(dtype)


def forward_seeded(model: nn.Module, x: torch.Tensor, seed: int):
    # `random_mask` (and drop path) draw from the global generator
    torch.manual_seed(seed)
    return model(x)


def visible_rows(mask: torch.Tensor, tokens: int) -> torch.Tensor:
    """Visible positions (raster order) of a tap with ``tokens`` tokens."""
    grid, side = int(mask.shape[1]**.5), int(tokens**.5)
    keep = 1 - mask[:1].reshape(1, 1, grid, grid)
    return F.interpolate(keep, size=(side, side)).flatten().bool()


def assert_taps_match(dense_out, visible_out, atol: float) -> None:
    lat_d, mask_d, ids_d = dense_out
    lat_v, mask_v, ids_v = visible_out
    assert ids_d is None and ids_v is None
    assert torch.equal(mask_d, mask_v)
    assert [t.shape for t in lat_d] == [t.shape for t in lat_v]
    for stage, (a, b) in enumerate(zip(lat_d, lat_v)):
        vis = visible_rows(mask_d, a.shape[1])
        torch.testing.assert_close(
            b[:, vis], a[:, vis], rtol=0, atol=atol, msg=f'stage {stage}')
        # masked positions hold zeros; the decoders put mask tokens there
        assert torch.count_nonzero(b[:, ~vis]) == 0


@pytest.mark.parametrize('case', list(CASES))
def test_visible_taps_equal_dense_taps(case):
    extra, side = CASES[case]
    dense, visible = build_pair(extra, mask_ratio=0.5)
    x = images(side)
    with torch.no_grad():
        for seed in range(3):  # three different masks
            assert_taps_match(
                forward_seeded(dense, x, seed),
                forward_seeded(visible, x, seed),
                atol=1e-5)


def test_visible_taps_equal_dense_taps_float64():
    extra, side = CASES['w3-straddle']
    dense, visible = build_pair(extra, torch.float64, mask_ratio=0.5)
    x = images(side, torch.float64)
    with torch.no_grad():
        assert_taps_match(
            forward_seeded(dense, x, 4),
            forward_seeded(visible, x, 4),
            atol=1e-10)


def test_plan_has_straddling_and_shifted_windows():
    """The cases exercise uneven window groups and the shift mask."""
    extra, side = CASES['w3-straddle']
    _, visible = build_pair(extra, mask_ratio=0.5)
    torch.manual_seed(0)
    mask = visible.random_mask(1, torch.device('cpu'))
    plan = visible.visible_plan(mask)
    assert [step['hw'] for step in plan] == [(24, 24), (12, 12), (6, 6),
                                             (3, 3)]
    for step in plan:
        for groups in step['block_groups']:
            num_vis = len(step['pos'])
            # every visible token sits in exactly one valid slot
            flat_gather = groups.gather.flatten()
            assert torch.equal(flat_gather[groups.inverse],
                               torch.arange(num_vis))
            valid = groups.mask[:, 0].isfinite()  # key validity per slot
            assert int(valid.sum()) == num_vis
            assert valid.flatten()[groups.inverse].all()
    plain, shifted = plan[0]['block_groups']
    counts = plain.mask[:, 0].isfinite().sum(-1)
    assert counts.min() < counts.max() <= 9  # uneven groups of a 3x3 window
    assert not (plain.mask == -100).any()  # no shift mask without shift
    assert (shifted.mask == -100).any()  # the shift mask is gathered
    # the one-window last map is not shifted (as ShiftWindowMSA)
    last_plain, last_shifted = plan[3]['block_groups']
    assert last_plain is last_shifted
    # merged tokens take their 2x2 children in nn.Unfold's order
    pos0, children = plan[0]['pos'], plan[0]['children']
    rows, cols = pos0[children] // 24, pos0[children] % 24
    assert torch.equal(rows - rows[:, :1],
                       torch.tensor([[0, 0, 1, 1]]).expand_as(rows))
    assert torch.equal(cols - cols[:, :1],
                       torch.tensor([[0, 1, 0, 1]]).expand_as(cols))
    assert torch.equal(plan[1]['pos'],
                       (rows[:, 0] // 2) * 12 + cols[:, 0] // 2)


def test_visible_matches_dense_with_masked_input_changed():
    """Masked pixels reach neither mode's visible taps."""
    extra, side = CASES['w4']
    dense, visible = build_pair(extra)
    x = images(side)
    with torch.no_grad():
        lat, mask, _ = forward_seeded(visible, x, 2)
        hidden = F.interpolate(
            mask[:1].reshape(1, 1, 4, 4), scale_factor=16).bool()[0, 0]
        x2 = x.clone()
        x2[:, :, hidden] = torch.randn_like(x2[:, :, hidden]) * 10
        lat2, _, _ = forward_seeded(visible, x2, 2)
        for a, b in zip(lat, lat2):
            torch.testing.assert_close(a, b)
        assert_taps_match(
            forward_seeded(dense, x2, 2), (lat2, mask, None), atol=1e-5)


def grads_of(model: nn.Module, x: torch.Tensor,
             weights: List[torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Parameter gradients of a fixed linear loss on the visible taps."""
    model.zero_grad()
    latents, mask, _ = forward_seeded(model, x, 5)
    loss = sum((t[:, visible_rows(mask, t.shape[1])] * w).sum()
               for t, w in zip(latents, weights))
    loss.backward()
    return {
        n: p.grad.clone()
        for n, p in model.named_parameters() if p.grad is not None
    }


def test_visible_gradients_equal_dense_gradients():
    extra, side = CASES['w3-straddle']
    # train mode with drop path: both modes draw the same per-sample masks
    dense, visible = build_pair(extra, mask_ratio=0.5, drop_path_rate=0.3)
    x = images(side)
    with torch.no_grad():
        lat, mask, _ = forward_seeded(dense, x, 5)
    gen = torch.Generator().manual_seed(7)
    # scaled so that the largest gradients are O(1): atol is then relative
    weights = [
        torch.randn(t[:, visible_rows(mask, t.shape[1])].shape, generator=gen)
        / 100 for t in lat
    ]
    dense.train()
    visible.train()
    g_dense = grads_of(dense, x, weights)
    g_vis = grads_of(visible, x, weights)
    trainable = {n for n, p in dense.named_parameters() if p.requires_grad}
    assert set(g_dense) == set(g_vis) == trainable
    assert 0.3 < max(g.abs().max() for g in g_dense.values()) < 3
    for name in g_dense:
        torch.testing.assert_close(
            g_vis[name], g_dense[name], rtol=0, atol=1e-5, msg=name)
    # activation checkpointing recomputes the same compact blocks
    _, visible_cp = build_pair(
        extra, mask_ratio=0.5, drop_path_rate=0.3, with_cp=True)
    visible_cp.load_state_dict(visible.state_dict())
    visible_cp.train()
    g_cp = grads_of(visible_cp, x, weights)
    for name in g_vis:
        torch.testing.assert_close(g_cp[name], g_vis[name], msg=name)


# The existing LocalMIM Swin test setting: 128 px, patch 4, window 4,
# 32-px cells (a 4x4 grid), taps after merging on 16/8/4/4 grids.
LOCALMIM = dict(
    type='LocalMIM',
    backbone=dict(
        type='LocalMIMSwin',
        arch=dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4]),
        img_size=128,
        window_size=4,
        drop_path_rate=0.),
    neck=dict(
        type='LocalMIMSwinNeck',
        in_channels=[32, 64, 128, 128],
        grids=[16, 8, 4, 4],
        out_channels=[27] * 4,
        decoder_embed_dim=32,
        decoder_num_heads=2),
    head=dict(
        type='LocalMIMHead', patch_size=32, scales=[4, 2, 1, 1],
        in_channels=3))


def test_localmim_loss_is_the_same_in_both_modes():
    models = {}
    for mode in ENCODER_MODES:
        cfg = copy.deepcopy(LOCALMIM)
        cfg['backbone']['encoder_mode'] = mode
        models[mode] = MODELS.build(cfg)
    assert models['visible'].backbone.encoder_mode == 'visible'
    models['visible'].load_state_dict(models['dense'].state_dict())
    x = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(3))
    losses = {}
    for mode, model in models.items():
        torch.manual_seed(11)
        losses[mode] = model.loss(x, [])
        sum(losses[mode].values()).backward()
    assert sorted(losses['visible']) == [f'loss_scale{k}' for k in range(4)]
    for key, value in losses['dense'].items():
        assert value > 0
        torch.testing.assert_close(
            losses['visible'][key], value, rtol=1e-5, atol=1e-6)
    # the decoders see the same tap tokens: equal decoder gradients
    for (name, p_d), p_v in zip(models['dense'].neck.named_parameters(),
                                models['visible'].neck.parameters()):
        if p_d.grad is not None:
            torch.testing.assert_close(
                p_v.grad, p_d.grad, rtol=1e-4, atol=1e-6, msg=name)


def flops_by_kind(model: nn.Module, x: torch.Tensor) -> Dict[str, int]:
    """Encoder forward FLOPs: convolution, linear (mm) and attention (bmm)."""
    counter = FlopCounterMode(display=False)
    torch.manual_seed(0)
    with torch.no_grad(), counter:
        model(x)
    kinds = dict(conv=0, mm=0, bmm=0)
    for op, flops in counter.get_flop_counts()['Global'].items():
        name = str(op)
        kind = 'conv' if 'convolution' in name else \
            'bmm' if 'bmm' in name else 'mm'
        kinds[kind] += flops
    return kinds


def test_visible_forward_flops_are_bounded():
    """Bound: conv + (visible fraction) x linear + dense attention.

    The patch embedding (conv) runs on the whole image in both modes. Every
    linear layer (qkv, proj, FFN, merging reduction) is per token and the
    visible fraction ``f`` is the same at every stage (cells align with the
    tokens), so the compact linear FLOPs are exactly ``f`` times the dense
    ones. Window attention costs ``nW_vis * M^2`` per head and channel,
    at most the dense ``nW * N^2`` (``M <= N``, ``nW_vis <= nW``). At the
    mask ratio 0.75 (13 of 16 cells masked, f = 3/16) this is also below
    half of the dense forward. The dense path itself exceeds the bound by
    ``(1 - f)`` of its linear FLOPs.
    """
    extra, side = CASES['w4']
    dense, visible = build_pair(extra, mask_ratio=0.75)
    x = images(side, n=1)
    f = 3 / 16
    dense_flops = flops_by_kind(dense, x)
    vis_flops = flops_by_kind(visible, x)
    assert vis_flops['conv'] == dense_flops['conv'] > 0
    assert vis_flops['mm'] == pytest.approx(f * dense_flops['mm'], rel=1e-9)
    assert 0 < vis_flops['bmm'] <= dense_flops['bmm']
    bound = dense_flops['conv'] + f * dense_flops['mm'] + dense_flops['bmm']
    assert sum(vis_flops.values()) <= bound < sum(dense_flops.values())
    assert sum(vis_flops.values()) < 0.5 * sum(dense_flops.values())


def test_unmasked_forward_is_swin():
    extra, side = CASES['w4']
    dense, visible = build_pair(extra)
    x = images(side)
    with torch.no_grad():
        for a, b in zip(dense(x, mask=None), visible(x, None)):
            assert a.dim() == 4
            assert torch.equal(a, b)


def test_bad_encoder_mode():
    with pytest.raises(ValueError, match='`encoder_mode`') as err:
        MODELS.build(dict(TINY_SWIN, **CASES['w4'][0], encoder_mode='sparse'))
    assert "('visible', 'dense')" in str(err.value)
    assert "'sparse'" in str(err.value)
    with pytest.raises(ValueError, match='2x2 patch merging'):
        MODELS.build(
            dict(
                TINY_SWIN,
                **CASES['w4'][0],
                stage_cfgs=dict(
                    downsample_cfg=dict(kernel_size=4, stride=2, padding=1))))
    x = torch.zeros(1, 3, 32, 32)  # not the built img_size
    with pytest.raises(ValueError, match='`img_size`'):
        MODELS.build(dict(TINY_SWIN, **CASES['w4'][0]))(x)
