# Copyright (c) OpenMMLab. All rights reserved.
import copy

import torch
from helpers import TINY_HEAD, TINY_NECK, tiny_backbone
from mmengine.registry import DefaultScope
from PIL import Image

from mim_plugins.visualization import mae_reconstruct, save_reconstruction_grid


def tiny_mae():
    from mmpretrain.registry import MODELS
    backbone = tiny_backbone(mask_ratio=0.75)
    backbone['arch']['num_layers'] = 2
    cfg = dict(
        type='MAE',
        backbone=backbone,
        neck=copy.deepcopy(TINY_NECK),
        head=copy.deepcopy(TINY_HEAD))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg)
    model.init_weights()
    return model


def test_composite_keeps_visible_patches(tmp_path):
    model = tiny_mae()
    inputs = torch.randn(3, 1, 16, 16)
    out = mae_reconstruct(model, inputs, seed=0)
    assert out['mask'].shape == (3, 16)
    assert (out['mask'].sum(1) == 12).all()  # 75 % of 16 patches
    head = model.head
    visible = (1 - out['mask']).unsqueeze(-1).bool()
    comp = head.patchify(out['composite'])
    orig = head.patchify(inputs)
    assert torch.allclose(
        comp[visible.expand_as(comp)],
        orig[visible.expand_as(orig)],
        atol=1e-5)
    masked = head.patchify(out['masked'])
    assert (masked[~visible.expand_as(masked)] == 0).all()
    rec = head.patchify(out['reconstruction'])
    assert torch.allclose(comp[~visible.expand_as(comp)],
                          rec[~visible.expand_as(rec)])
    # same seed -> same mask
    again = mae_reconstruct(model, inputs, seed=0)
    assert torch.equal(again['mask'], out['mask'])

    png = save_reconstruction_grid(
        out,
        str(tmp_path / 'grid.png'),
        mean=[127.5],
        std=[50.0],
        num_images=3,
        title='t')
    with Image.open(png) as img:
        w, h = img.size
    # 3 columns x 4 rows of 1.3 x 1.4 inch cells at 120 dpi
    assert (w, h) == (round(3 * 1.3 * 120), round(4 * 1.4 * 120))


def test_pictures_leave_the_training_rng_alone():
    """Drawing a picture (seeded mask) must not reset the global stream the
    training masks come from."""
    from mim_plugins.visualization import reconstruct
    model = tiny_mae()
    inputs = torch.randn(2, 1, 16, 16)
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    a = mae_reconstruct(model, inputs, seed=0)
    b = reconstruct(model, inputs, seed=0)
    assert torch.equal(torch.rand(4), expected)
    assert torch.equal(a['mask'], b['mask'])  # still seeded
