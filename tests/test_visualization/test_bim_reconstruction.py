# Copyright (c) OpenMMLab. All rights reserved.
import torch
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

from mim_plugins.visualization import reconstruct


def test_bim_panels_one_per_block():
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(
            dict(
                type='BIM',
                backbone=dict(
                    type='BIMViT',
                    arch=dict(
                        embed_dims=32,
                        num_layers=3,
                        num_heads=2,
                        feedforward_channels=64),
                    img_size=16,
                    patch_size=4,
                    patch_cfg=dict(in_channels=1),
                    block_boundaries=[1, 3]),
                neck=dict(
                    type='MAEPretrainDecoder',
                    num_patches=16,
                    patch_size=4,
                    in_chans=1,
                    embed_dim=32,
                    decoder_embed_dim=16,
                    decoder_depth=1,
                    decoder_num_heads=2),
                head=dict(
                    type='MAEPretrainHead',
                    norm_pix=True,
                    patch_size=4,
                    in_channels=1,
                    loss=dict(type='PixelReconstructionLoss',
                              criterion='L2'))))
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
