# Copyright (c) OpenMMLab. All rights reserved.
import copy

import torch
from helpers import TINY_HEAD, TINY_NECK, tiny_backbone
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

from mim_plugins.visualization import reconstruct


def test_bim_panels_one_per_block():
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        backbone = tiny_backbone('BIMViT', block_boundaries=[1, 3])
        backbone['arch']['num_layers'] = 3
        model = MODELS.build(
            dict(
                type='BIM',
                backbone=backbone,
                neck=copy.deepcopy(TINY_NECK),
                head=copy.deepcopy(TINY_HEAD)))
    model.init_weights()
    inputs = torch.randn(2, 1, 16, 16)
    panels = reconstruct(model, inputs, seed=0)
    assert list(panels) == ['original', 'masked', 'block1', 'block2', 'mask']
    visible = (1 - panels['mask']).bool()
    head = model.head[0]
    for name in ('block1', 'block2'):
        assert panels[name].shape == inputs.shape
        got = head.patchify(panels[name])[visible]
        assert torch.allclose(got, head.patchify(inputs)[visible], atol=1e-5)
    # the two blocks' decoders predict the masked patches differently
    masked = ~visible
    assert not torch.allclose(
        head.patchify(panels['block1'])[masked],
        head.patchify(panels['block2'])[masked])
