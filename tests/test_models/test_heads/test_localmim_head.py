# Copyright (c) OpenMMLab. All rights reserved.
"""LocalMIM head: per-scale targets, loss masks and losses."""
import pytest
import torch
from mmpretrain.registry import MODELS

import mim_plugins  # noqa: F401
from mim_plugins.models.heads import LocalMIMHead
from mim_plugins.models.utils import HOGTarget


def build_head(**kwargs):
    cfg = dict(type='LocalMIMHead', patch_size=4, in_channels=1)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def test_cells_and_target_dims():
    head = build_head()
    assert head.cell_sizes == [1, 2, 4, 8]  # patch 4 / scales 4, 2, 1, .5
    assert head.target_channels == [9] * 4
    vit_b = LocalMIMHead(patch_size=16, in_channels=3, n_bins=9)
    assert vit_b.cell_sizes == [4, 8, 16, 32]
    assert vit_b.target_channels == [27] * 4
    vit_l = LocalMIMHead(
        patch_size=16, in_channels=3, n_bins=18, hog_bias=True)
    assert vit_l.target_channels == [54] * 4
    assert all(h.with_bias for h in vit_l.hog)
    pix = build_head(target='pixel', scales=[2, 1, 0.5], in_channels=3)
    assert pix.target_channels == [3 * 4, 3 * 16, 3 * 64]


def test_target_shapes_and_values():
    head = build_head()
    torch.manual_seed(0)
    x = torch.randn(2, 1, 16, 16)  # 4x4 patches
    targets = head.construct_targets(x)
    assert [t.shape for t in targets] == [(2, 256, 9), (2, 64, 9), (2, 16, 9),
                                          (2, 4, 9)]
    for t, cell in zip(targets, [1, 2, 4, 8]):
        ref = HOGTarget(cell)(x).flatten(2).transpose(1, 2)
        torch.testing.assert_close(t, ref)

    pix = build_head(target='pixel', scales=[2, 1, 0.5])
    targets = pix.construct_targets(x)
    assert [t.shape for t in targets] == [(2, 64, 4), (2, 16, 16), (2, 4, 64)]
    # cell (0, 1) of the x1 scale = pixels [0:4, 4:8], norm_pix-ed
    cell = x[0, 0, 0:4, 4:8].flatten()
    ref = (cell - cell.mean()) / (cell.var() + 1e-6)**.5
    torch.testing.assert_close(targets[1][0, 1], ref)


def test_loss_masks_per_scale():
    head = build_head()
    mask = torch.tensor([[1., 0., 0., 1.], [1., 1., 0., 0.], [0., 0., 0., 1.],
                         [1., 0., 1., 1.]]).reshape(1, 16)
    m4, m2, m1, m_half = head.construct_masks(mask, (4, 4))
    grid = mask.reshape(4, 4)
    # x4 / x2: nearest upsampling, every cell inherits its patch's mask
    for m, s in ((m4, 4), (m2, 2)):
        m = m.reshape(4 * s, 4 * s)
        for i in range(4 * s):
            for j in range(4 * s):
                assert m[i, j] == grid[i // s, j // s]
    assert torch.equal(m1, mask)  # x1: the mask itself
    # x1/2: soft mask, mean over 2x2 patches
    expected = torch.tensor([[3 / 4, 1 / 4], [1 / 4, 3 / 4]]).reshape(1, 4)
    torch.testing.assert_close(m_half, expected)


def test_loss_matches_reference():
    head = build_head(loss_weights=[1., 1., 1., 2.])
    torch.manual_seed(0)
    x = torch.randn(2, 1, 16, 16)
    mask = (torch.rand(2, 16) > 0.5).float()
    mask[:, 0] = 1.
    preds = [torch.randn(2, n, 9) for n in (256, 64, 16, 4)]
    losses = head.loss(preds, x, mask)
    assert list(losses) == [f'loss_scale{k}' for k in range(4)]
    targets = head.construct_targets(x)
    masks = head.construct_masks(mask, (4, 4))
    for k, (p, t, m, w) in enumerate(zip(preds, targets, masks, [1, 1, 1, 2])):
        # official: sum_j M(j) * mean_c (pred - target)^2 / sum_j M(j)
        ref = w * (((p - t)**2).mean(-1) * m).sum() / m.sum()
        torch.testing.assert_close(losses[f'loss_scale{k}'], ref)


def test_bad_config():
    with pytest.raises(ValueError, match='target'):
        build_head(target='clip')
    with pytest.raises(ValueError, match='scales'):
        build_head(scales=[8, 1])
    with pytest.raises(ValueError, match='patch_size'):
        build_head(patch_size=2)  # 2 / 4 = half-pixel cells
    with pytest.raises(ValueError, match='loss_weights'):
        build_head(loss_weights=[1., 1.])
    with pytest.raises(ValueError, match='norm_pix'):
        build_head(target='pixel')  # 1-px cells of 1 channel
    head = build_head()
    with pytest.raises(ValueError, match='largest cell'):
        head.construct_targets(torch.zeros(1, 1, 12, 12))
    with pytest.raises(ValueError, match='does not match'):
        head.loss([torch.zeros(1, 5, 9)] * 4, torch.zeros(1, 1, 16, 16),
                  torch.ones(1, 16))
