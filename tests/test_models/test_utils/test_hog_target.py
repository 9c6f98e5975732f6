# Copyright (c) OpenMMLab. All rights reserved.
"""LocalMIM's HOG target against hand-computed values."""
import math

import numpy as np
import pytest
import torch

import mim_plugins  # noqa: F401
from mim_plugins.models.utils import HOGTarget


def reference_hog(img: np.ndarray, cell: int, n_bins: int,
                  bias=(0., 0.)) -> np.ndarray:
    """Loop-by-loop HOG of one (H, W) channel: reflect-padded Sobel,
    ``atan2(g0, g1)``, floor binning, cell mean, L2 norm per cell."""
    H, W = img.shape
    p = np.pad(img, 1, mode='reflect')
    k = np.array([[1., 0., -1.], [2., 0., -2.], [1., 0., -1.]])
    hist = np.zeros((n_bins, H, W))
    for i in range(H):
        for j in range(W):
            win = p[i:i + 3, j:j + 3]
            g0 = (win * k).sum() + bias[0]
            g1 = (win * k.T).sum() + bias[1]
            theta = math.atan2(g0, g1)
            b = math.floor(theta / math.pi * n_bins) % n_bins
            hist[b, i, j] += math.hypot(g0, g1)
    out = hist.reshape(n_bins, H // cell, cell, W // cell,
                       cell).mean(axis=(2, 4))
    norm = np.sqrt((out**2).sum(axis=0, keepdims=True))
    return out / np.maximum(norm, 1e-12)


def vertical_edge(size=8):
    img = torch.zeros(1, 1, size, size)
    img[..., size // 2:] = 1.  # dark left, bright right
    return img


def test_vertical_edge_hand_computed():
    hog = HOGTarget(cell_size=1, n_bins=9)
    out = hog(vertical_edge())[0]  # (9, 8, 8)
    # Sobel across the step: g0 = (1+2+1) * (0 - 1) = -4 at the two columns
    # next to it, g1 = 0 -> theta = -pi/2 -> floor(-4.5) % 9 = bin 4
    # (80-100 deg in the official atan2(g0, g1) convention).
    expected = torch.zeros(9, 8, 8)
    expected[4, :, 3:5] = 1.
    torch.testing.assert_close(out, expected)
    # one 8-px cell: all the energy in that bin; 18 bins -> bin 9
    assert torch.equal(
        HOGTarget(8, 9)(vertical_edge())[0, :, 0, 0],
        torch.eye(9)[4])
    assert torch.equal(
        HOGTarget(8, 18)(vertical_edge())[0, :, 0, 0],
        torch.eye(18)[9])


def test_horizontal_edge_and_diagonal_ramp():
    img = vertical_edge().transpose(-1, -2)  # horizontal edge
    assert torch.equal(HOGTarget(8, 9)(img)[0, :, 0, 0], torch.eye(9)[0])
    # ramp x[i, j] = i + j: g0 = g1 = -8 inside -> theta = -3pi/4 ->
    # floor(-6.75) % 9 = bin 2 (unsigned 45 deg)
    ramp = torch.arange(8.)[:, None] + torch.arange(8.)[None]
    out = HOGTarget(1, 9)(ramp[None, None])[0]
    assert torch.equal(out[:, 1:-1, 1:-1].argmax(0), torch.full((6, 6), 2))
    torch.testing.assert_close(out[2, 1:-1, 1:-1], torch.ones(6, 6))


def test_cell_average_before_normalisation():
    # 4x4 cell holding the vertical step (two columns of magnitude 4) and,
    # below, a horizontal step: the cell mean mixes both bins before the
    # L2 norm, so the ratio of the two bins is the ratio of magnitudes.
    img = torch.zeros(1, 1, 4, 4)
    img[..., :2, 2:] = 1.
    out = HOGTarget(4, 9)(img)[0, :, 0, 0]
    ref = reference_hog(img[0, 0].numpy(), 4, 9)[:, 0, 0]
    torch.testing.assert_close(out, torch.from_numpy(ref).float())
    assert (out > 0).sum() >= 2


@pytest.mark.parametrize('gradient', HOGTarget.GRADIENTS)
@pytest.mark.parametrize('cell,n_bins', [(1, 9), (2, 9), (4, 18), (8, 9)])
def test_matches_reference_on_random_image(cell, n_bins, gradient):
    torch.manual_seed(0)
    # 8-bit pixel values: the Sobel sums are exact in float32 too, so no
    # orientation near a bin edge is rounded into the other bin
    img = torch.randint(0, 256, (2, 3, 8, 8)).float()
    out = HOGTarget(cell, n_bins, gradient=gradient)(img)
    assert out.shape == (2, 3 * n_bins, 8 // cell, 8 // cell)
    for b in range(2):
        for c in range(3):  # channel-major: R bins, G bins, B bins
            ref = reference_hog(img[b, c].double().numpy(), cell, n_bins)
            torch.testing.assert_close(
                out[b, c * n_bins:(c + 1) * n_bins],
                torch.from_numpy(ref).float(),
                atol=1e-5,
                rtol=1e-4)


def official_layer_hog(img: torch.Tensor, cell: int,
                       n_bins: int) -> torch.Tensor:
    """The official HOG layer's steps on (N, 1, H, W): an ``nn.Conv2d``
    holding the Sobel kernels, reflect padding, ``norm``, ``atan2``, floor
    binning, ``AvgPool2d`` and ``F.normalize``."""
    conv = torch.nn.Conv2d(
        1, 2, 3, padding=1, padding_mode='reflect', bias=False)
    k = torch.tensor([[1., 0., -1.], [2., 0., -2.], [1., 0., -1.]])
    conv.weight.data = torch.stack([k, k.t()])[:, None]
    with torch.no_grad():
        gxy = conv(img)
    mag = gxy.norm(dim=1, keepdim=True)
    phase = torch.atan2(gxy[:, 0], gxy[:, 1])[:, None]
    bins = torch.floor(phase / math.pi * n_bins).long() % n_bins
    hist = torch.zeros(img.shape[0], n_bins, *img.shape[2:])
    hist.scatter_(1, bins, mag)
    hist = torch.nn.AvgPool2d(cell, stride=cell)(hist)
    return torch.nn.functional.normalize(hist, p=2, dim=1)


@pytest.mark.parametrize('cell', [1, 2, 8])
def test_conv_form_is_the_official_convolution(cell):
    """Normalised images with a flat background: ``'conv'`` gives the
    official layer's targets, round-off on the flat part included;
    ``'difference'`` gives exact zeros there."""
    torch.manual_seed(0)
    img = torch.full((2, 1, 16, 16), -72.94 / 90.02)  # black, normalised
    img[..., 4:12, 4:12] = torch.randn(2, 1, 8, 8)
    conv = HOGTarget(cell, 9)  # 'conv' is the default
    padded = torch.nn.functional.pad(img, (1, 1, 1, 1), mode='reflect')
    ref = official_layer_hog(img, cell, 9)
    torch.testing.assert_close(conv(img), ref, atol=1e-6, rtol=1e-5)
    # the same filter: equal away from the flat part up to round-off ...
    diff = HOGTarget(cell, 9, gradient='difference')
    torch.testing.assert_close(
        diff.sobel(padded), conv.sobel(padded), atol=1e-5, rtol=1e-5)
    # ... and exact zeros on it (rows 0-2 see no pattern pixel)
    flat = HOGTarget(1, 9, gradient='difference')(img)[..., :3, :]
    assert torch.equal(flat, torch.zeros_like(flat))


def test_flat_zero_and_unit_norm():
    hog = HOGTarget(cell_size=2, n_bins=9, gradient='difference')
    for value in (0.7, -72.94 / 90.02):  # e.g. normalised black background
        assert torch.equal(
            hog(torch.full((1, 3, 8, 8), value)), torch.zeros(1, 27, 4, 4))
    torch.manual_seed(1)
    for gradient in HOGTarget.GRADIENTS:
        out = HOGTarget(2, 9, gradient=gradient)(torch.randn(2, 1, 8, 8))
        torch.testing.assert_close(out.norm(dim=1), torch.ones(2, 4, 4))


def test_per_channel():
    img = torch.zeros(1, 3, 8, 8)
    img[:, 1, :, 4:] = 1.  # edge in G only
    out = HOGTarget(8, 9)(img)[0, :, 0, 0]
    expected = torch.zeros(27)
    expected[9 + 4] = 1.
    assert torch.equal(out, expected)


def test_frozen_random_bias():
    torch.manual_seed(0)
    hog = HOGTarget(cell_size=4, n_bins=18, bias=True)
    assert hog.with_bias and 'bias' in hog.state_dict()
    assert 'weight' not in hog.state_dict()  # constant Sobel kernels
    assert hog.bias.abs().max() <= 1 / 3
    assert not any(p.requires_grad for p in hog.parameters())
    # a flat image now has the constant gradient (b0, b1) everywhere
    b0, b1 = hog.bias.tolist()
    out = hog(torch.zeros(1, 1, 8, 8))[0, :, 0, 0]
    expected_bin = math.floor(math.atan2(b0, b1) / math.pi * 18) % 18
    assert torch.equal(out, torch.eye(18)[expected_bin])
    img = torch.randn(1, 1, 8, 8)
    ref = reference_hog(img[0, 0].double().numpy(), 4, 18, (b0, b1))
    torch.testing.assert_close(
        hog(img)[0], torch.from_numpy(ref).float(), atol=1e-5, rtol=1e-4)


def test_no_bias_by_default_and_errors():
    assert not HOGTarget(4).with_bias
    with pytest.raises(ValueError, match='cell_size'):
        HOGTarget(0)
    with pytest.raises(ValueError, match='n_bins'):
        HOGTarget(4, n_bins=0)
    with pytest.raises(ValueError, match='cell_size'):
        HOGTarget(8)(torch.zeros(1, 1, 12, 12))
    with pytest.raises(ValueError, match="`gradient` must be one of .*'conv'"):
        HOGTarget(4, gradient='sobel')
