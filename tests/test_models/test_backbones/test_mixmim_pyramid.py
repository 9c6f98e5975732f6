# Copyright (c) OpenMMLab. All rights reserved.
import os.path as osp

import pytest
import torch
from mmpretrain.models import MixMIMPretrainTransformer, MixMIMTransformer
from mmpretrain.registry import MODELS

import mim_plugins  # noqa: F401
from mim_plugins.models import MixMIMPyramidTransformer

ARCH = dict(embed_dims=16, depths=[1, 1, 2, 1], num_heads=[1, 2, 2, 4])
KW = dict(arch=ARCH, img_size=64, window_size=[4, 4, 4, 2])


def _pyramid(**kwargs) -> MixMIMPyramidTransformer:
    torch.manual_seed(0)
    model = MixMIMPyramidTransformer(**{**KW, **kwargs})
    model.init_weights()
    model.eval()
    return model


def test_registered():
    model = MODELS.build(
        dict(type='mmpretrain.MixMIMPyramidTransformer', **KW))
    assert isinstance(model, MixMIMTransformer)


def test_output_shapes_and_strides():
    model = _pyramid()
    outs = model(torch.randn(2, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(2, 16, 16, 16), (2, 32, 8, 8),
                                              (2, 64, 4, 4), (2, 128, 2, 2)]
    model = _pyramid(out_indices=(1, -1))
    outs = model(torch.randn(2, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(2, 32, 8, 8), (2, 128, 2, 2)]
    # one LayerNorm per output; the last stage reuses the pre-trained `norm`
    assert hasattr(model, 'norm1') and not hasattr(model, 'norm0')
    assert not hasattr(model, 'norm3')


def test_other_input_size():
    model = _pyramid()
    outs = model(torch.randn(1, 3, 96, 80))
    assert [tuple(o.shape[2:]) for o in outs] == [(24, 20), (12, 10), (6, 5),
                                                  (3, 3)]
    assert all(torch.isfinite(o).all() for o in outs)


def test_last_stage_matches_parent_pooled_output():
    model = _pyramid()
    parent = MixMIMTransformer(**KW)
    parent.eval()
    parent.load_state_dict(model.state_dict(), strict=False)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        last = model(x)[-1]
        pooled = parent(x)[0]
    torch.testing.assert_close(last.mean(dim=(2, 3)), pooled)


def test_loads_mmpretrain_checkpoint_unchanged(tmp_path):
    torch.manual_seed(1)
    pretrain = MixMIMPretrainTransformer(**KW)
    pretrain.init_weights()
    model = MixMIMPyramidTransformer(**KW)
    missing, unexpected = model.load_state_dict(
        pretrain.state_dict(), strict=False)
    assert unexpected == []
    assert sorted({k.rsplit('.', 1)[0]
                   for k in missing}) == ['norm0', 'norm1', 'norm2']
    # the same through init_cfg, from an algorithm checkpoint
    ckpt = osp.join(tmp_path, 'mixmim.pth')
    state = {f'backbone.{k}': v for k, v in pretrain.state_dict().items()}
    state['neck.mask_token'] = torch.zeros(1, 1, 8)
    torch.save({'state_dict': state}, ckpt)
    model = MixMIMPyramidTransformer(
        **KW,
        init_cfg=dict(type='Pretrained', checkpoint=ckpt, prefix='backbone.'))
    model.init_weights()
    for k, v in pretrain.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v)


def test_frozen_stages():
    model = MixMIMPyramidTransformer(**KW, frozen_stages=2)
    model.train()
    frozen = [
        model.patch_embed, model.layers[0], model.layers[1], model.norm0,
        model.norm1
    ]
    for module in frozen:
        assert not module.training
        assert all(not p.requires_grad for p in module.parameters())
    for module in (model.layers[2], model.layers[3], model.norm2, model.norm):
        assert module.training
        assert all(p.requires_grad for p in module.parameters())
    outs = model(torch.randn(2, 3, 64, 64))
    sum(o.sum() for o in outs).backward()
    assert model.layers[0].blocks[0].attn.qkv.weight.grad is None
    assert model.layers[2].blocks[0].attn.qkv.weight.grad is not None


def test_get_layer_depth_kept():
    model = MixMIMPyramidTransformer(**KW)
    parent = MixMIMTransformer(**KW)
    for name, _ in parent.named_parameters():
        assert model.get_layer_depth('backbone.' + name, 'backbone.') == \
            parent.get_layer_depth('backbone.' + name, 'backbone.')
    num_layers = sum(ARCH['depths']) + 2
    assert model.get_layer_depth('backbone.layers.2.blocks.1.ln1.weight',
                                 'backbone.') == (4, num_layers)
    assert model.get_layer_depth('backbone.norm0.weight',
                                 'backbone.') == (num_layers - 2, num_layers)


@pytest.mark.parametrize('kwargs, field', [
    (dict(out_indices=(0, 4)), 'out_indices'),
    (dict(frozen_stages=5), 'frozen_stages'),
    (dict(frozen_stages=-2), 'frozen_stages'),
])
def test_bad_config(kwargs, field):
    with pytest.raises(ValueError, match=field):
        MixMIMPyramidTransformer(**KW, **kwargs)
