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


def _to_official(state: dict) -> dict:
    """mmpretrain MixMIM names/orders -> the official (Sense-X) ones.

    Written from the official model: timm block names and Microsoft Swin's
    patch merging, whose 2x2 children are concatenated as x0 = (0, 0),
    x1 = (1, 0), x2 = (0, 1), x3 = (1, 1) (row, col), while mmpretrain's
    ``nn.Unfold`` gives channel ``c * 4 + row * 2 + col``.
    """
    names = [('patch_embed.projection.', 'patch_embed.proj.'),
             ('.ln1.', '.norm1.'), ('.ln2.', '.norm2.'),
             ('.ffn.layers.0.0.', '.mlp.fc1.'),
             ('.ffn.layers.1.', '.mlp.fc2.')]
    official = {}
    for key, value in state.items():
        for old, new in names:
            key = key.replace(old, new)
        if '.downsample.' in key:
            # unfold channel c * 4 + q -> Microsoft channel p * C + c, where
            # Microsoft child p = (0, 0), (1, 0), (0, 1), (1, 1) is unfold
            # child q = 0, 2, 1, 3
            lead = value.shape[:-1]
            v = value.reshape(*lead, -1, 4)[..., [0, 2, 1, 3]]
            value = v.transpose(-1, -2).reshape(*lead, -1).contiguous()
        official[key] = value
    return official


def test_loads_official_checkpoint_through_mmpretrain_converter(tmp_path):
    """Official MixMIM weights, converted by mmpretrain's own
    ``tools/model_converters/mixmim_to_mmpretrain.py`` (called, not copied),
    load into the pyramid backbone with every encoder tensor in place."""
    import subprocess
    import sys

    import mmpretrain
    from helpers import subprocess_env
    converter = osp.join(
        osp.dirname(mmpretrain.__file__), '.mim', 'tools', 'model_converters',
        'mixmim_to_mmpretrain.py')
    assert osp.isfile(converter), converter
    torch.manual_seed(2)
    reference = MixMIMTransformer(**KW)
    reference.init_weights()
    reference.eval()
    state = reference.state_dict()
    official = _to_official(state)
    official['head.weight'] = torch.randn(10, 128)
    official['head.bias'] = torch.randn(10)
    src, dst = tmp_path / 'official.pth', tmp_path / 'converted.pth'
    torch.save({'model': official}, src)
    proc = subprocess.run(
        [sys.executable, converter,
         str(src), str(dst)],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    model = MixMIMPyramidTransformer(
        **KW,
        init_cfg=dict(
            type='Pretrained', checkpoint=str(dst), prefix='backbone.'))
    model.init_weights()
    model.eval()
    for key, value in state.items():
        assert torch.equal(model.state_dict()[key], value), key
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        pooled = reference(x)[0]
        last = model(x)[-1]
    torch.testing.assert_close(last.mean(dim=(2, 3)), pooled)


def test_official_merge_order_is_microsoft_swin():
    """The merge-order conversion picks the documented child: an official
    reduction that copies child x1 (row 1, col 0) copies the unfold child
    at (1, 0) after mmpretrain's converter."""
    import importlib.util

    import mmpretrain
    path = osp.join(
        osp.dirname(mmpretrain.__file__), '.mim', 'tools', 'model_converters',
        'mixmim_to_mmpretrain.py')
    spec = importlib.util.spec_from_file_location('mixmim_converter', path)
    converter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(converter)
    C = 3
    official = torch.zeros(C, 4 * C)
    official[:, 1 * C:2 * C] = torch.eye(C)  # x1: row offset 1, col 0
    converted = converter.correct_unfold_reduction_order(official)
    x = torch.arange(2 * 2 * C, dtype=torch.float).reshape(1, C, 2, 2)
    unfolded = torch.nn.functional.unfold(x, 2, stride=2)[0, :, 0]
    torch.testing.assert_close(converted @ unfolded, x[0, :, 1, 0])
    assert torch.equal(
        _to_official({'layers.0.downsample.reduction.weight':
                      converted})['layers.0.downsample.reduction.weight'],
        official)


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
