# Copyright (c) OpenMMLab. All rights reserved.
import pytest
import torch
from mmengine.registry import DefaultScope
from PIL import Image

from mim_plugins.visualization import (prmim_panels, reconstruct,
                                       save_reconstruction_grid)
from mim_plugins.visualization.prmim import checkerboard_like

IMAGE_PANELS = [
    'original', 'masked', 'reconstruction', 'composite', 'kept_thrown'
]


def tiny_prmim(thrown_path='progressive', norm_pix=True):
    """16-px single-channel images, patch 2: 64 patches, 16 visible, 16 kept
    and 32 thrown."""
    from mmpretrain.registry import MODELS
    cfg = dict(
        type='PRMIM',
        backbone=dict(
            type='MAEViT',
            arch=dict(
                embed_dims=32,
                num_layers=1,
                num_heads=2,
                feedforward_channels=64),
            img_size=16,
            patch_size=2,
            patch_cfg=dict(in_channels=1),
            mask_ratio=0.75),
        neck=dict(
            type='PRMIMPretrainDecoder',
            num_patches=64,
            patch_size=2,
            in_chans=1,
            embed_dim=32,
            decoder_embed_dim=16,
            decoder_depth=1,
            decoder_num_heads=2,
            throw_ratio=0.5,
            thrown_path=thrown_path),
        head=dict(
            type='PRMIMPretrainHead',
            norm_pix=norm_pix,
            patch_size=2,
            in_channels=1,
            loss=dict(type='PixelReconstructionLoss', criterion='L2')))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg)
    model.init_weights()
    return model


def _select(patches, flags):
    """Patches (B, L, P) where ``flags`` (B, L) is 1."""
    return patches[flags.bool()]


def test_dispatch_and_panels():
    model = tiny_prmim()
    inputs = torch.randn(3, 1, 16, 16)
    out = reconstruct(model, inputs, seed=0)
    assert list(out) == IMAGE_PANELS + ['mask', 'kept_mask', 'thrown_mask']
    for name in IMAGE_PANELS:
        assert out[name].shape == inputs.shape, name
    for name in ('mask', 'kept_mask', 'thrown_mask'):
        assert out[name].shape == (3, 64), name
    # 48 masked = 16 kept + 32 thrown, per image
    assert (out['mask'].sum(1) == 48).all()
    assert (out['kept_mask'].sum(1) == 16).all()
    assert (out['thrown_mask'].sum(1) == 32).all()
    assert torch.equal(out['kept_mask'] + out['thrown_mask'], out['mask'])
    assert torch.equal(out['original'], inputs)
    # the registered PRMIM reconstructor, not the inherited MAE one
    torch.manual_seed(0)
    model.eval()
    with torch.no_grad():
        direct = prmim_panels(model, inputs)
    for name in IMAGE_PANELS:
        assert torch.allclose(direct[name], out[name]), name
    # same seed -> same mask
    again = reconstruct(model, inputs, seed=0)
    assert torch.equal(again['mask'], out['mask'])
    assert torch.equal(again['kept_mask'], out['kept_mask'])


@pytest.mark.parametrize('thrown_path', ['progressive', 'none'])
def test_patches_come_from_the_right_source(thrown_path):
    model = tiny_prmim(thrown_path)
    inputs = torch.randn(2, 1, 16, 16)
    out = reconstruct(model, inputs, seed=1)
    head = model.head
    p = {name: head.patchify(out[name]) for name in IMAGE_PANELS}
    visible = 1 - out['mask']
    kept, thrown = out['kept_mask'], out['thrown_mask']

    # visible patches: the input, in every panel that shows the input
    for name in ('masked', 'composite', 'kept_thrown'):
        assert torch.allclose(
            _select(p[name], visible),
            _select(p['original'], visible),
            atol=1e-5), name
    # masked patches are zeroed in the masked input
    assert (_select(p['masked'], out['mask']) == 0).all()
    # kept patches: the decoder prediction in composite and kept_thrown
    for name in ('composite', 'kept_thrown'):
        assert torch.allclose(
            _select(p[name], kept), _select(p['reconstruction'], kept))
    # the kept predictions are real predictions (not the input)
    assert not torch.allclose(
        _select(p['composite'], kept), _select(p['original'], kept))

    hatch = head.patchify(checkerboard_like(inputs))
    if thrown_path == 'progressive':
        # thrown patches are predicted by the thrown path
        assert torch.allclose(
            _select(p['composite'], thrown),
            _select(p['reconstruction'], thrown))
        assert _select(p['reconstruction'], thrown).abs().sum() > 0
        # and marked by half a checkerboard
        assert torch.allclose(
            _select(p['kept_thrown'], thrown),
            0.5 *
            (_select(p['reconstruction'], thrown) + _select(hatch, thrown)),
            atol=1e-6)
    else:
        # no thrown prediction: zero, and a plain checkerboard marks them
        assert (_select(p['reconstruction'], thrown) == 0).all()
        assert (_select(p['composite'], thrown) == 0).all()
        assert torch.allclose(
            _select(p['kept_thrown'], thrown), _select(hatch, thrown))


def test_checkerboard_spans_each_image():
    inputs = torch.stack([
        torch.linspace(-1, 1, 16).view(1, 4, 4),
        torch.linspace(0, 3, 16).view(1, 4, 4)
    ])
    board = checkerboard_like(inputs)
    assert board.shape == inputs.shape
    assert torch.equal(board[0].unique(), torch.tensor([-1., 1.]))
    assert torch.equal(board[1].unique(), torch.tensor([0., 3.]))
    # neighbouring pixels differ
    assert (board[:, :, :, 1:] != board[:, :, :, :-1]).all()
    assert (board[:, :, 1:, :] != board[:, :, :-1, :]).all()


def test_grid_draws_the_image_panels_only(tmp_path):
    model = tiny_prmim(norm_pix=False)
    out = reconstruct(model, torch.randn(2, 1, 16, 16), seed=0)
    png = save_reconstruction_grid(
        out, str(tmp_path / 'grid.png'), mean=[127.5], std=[50.0])
    with Image.open(png) as img:
        w, h = img.size
    # 2 columns x 5 rows (the (B, L) masks are not drawn) of 1.3 x 1.4 inch
    # cells at 120 dpi
    assert (w, h) == (round(2 * 1.3 * 120), round(5 * 1.4 * 120))
