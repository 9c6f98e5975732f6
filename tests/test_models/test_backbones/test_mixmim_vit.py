# Copyright (c) OpenMMLab. All rights reserved.
import os.path as osp

import pytest
import torch
from mmpretrain.models import VisionTransformer

import mim_plugins  # noqa: F401
from mim_plugins.models import MixMIMViT

ARCH = dict(embed_dims=32, num_layers=3, num_heads=2, feedforward_channels=64)
KW = dict(arch=ARCH, img_size=32, patch_size=4, patch_cfg=dict(in_channels=1))


def _vit(**kwargs) -> MixMIMViT:
    torch.manual_seed(0)
    model = MixMIMViT(**{**KW, 'cell_size': 8, **kwargs})
    model.init_weights()
    model.eval()
    return model


def _forward(model, x, seed=0):
    torch.manual_seed(seed)  # same mask for repeated calls
    with torch.no_grad():
        return model(x)


def test_shapes_and_mask():
    model = _vit()
    tokens, mask = _forward(model, torch.randn(4, 1, 32, 32))
    assert tokens.shape == (4, 64, 32)
    assert mask.shape == (1, 64, 1)
    # 16 cells of 2x2 patches, exactly half taken from the partner
    cells = mask.reshape(4, 2, 4, 2).permute(0, 2, 1, 3).reshape(16, 4)
    assert torch.equal(cells.min(1).values, cells.max(1).values)
    assert cells[:, 0].sum() == 8


def test_mixing_layout():
    """The encoder input is patch-embed(x_i) where mask=0, x_{B-1-i} else."""
    model = _vit()
    x = torch.randn(4, 1, 32, 32)
    seen = {}
    model.layers[0].ln1.register_forward_hook(
        lambda m, args, out: seen.setdefault('in', args[0]))
    _, mask = _forward(model, x)
    with torch.no_grad():
        patches = model.patch_embed(x)[0] + model.pos_embed[:, 1:]
    expected = patches * (1 - mask) + patches.flip(0) * mask
    torch.testing.assert_close(seen['in'][:, 2:], expected)
    cls = (model.cls_token + model.pos_embed[:, :1]).detach()
    torch.testing.assert_close(seen['in'][:, :2], cls.expand(4, 2, -1))


def test_other_image_does_not_change_output():
    model = _vit()
    x = torch.randn(4, 1, 32, 32)
    tokens, mask = _forward(model, x)
    x2 = x.clone()
    x2[3] = torch.randn(1, 32, 32) * 5  # sample 0's partner
    tokens2, mask2 = _forward(model, x2)
    assert torch.equal(mask, mask2)
    own = mask[0, :, 0] == 0
    torch.testing.assert_close(tokens2[0, own], tokens[0, own])
    assert not torch.allclose(tokens2[0, ~own], tokens[0, ~own])


def test_attention_probabilities_across_sources_are_zero():
    model = _vit()
    probs = []

    def recorder(q, k, v, attn_mask=None, dropout_p=0.):
        logits = q @ k.transpose(-2, -1) * q.shape[-1]**-0.5
        logits = logits.masked_fill(~attn_mask, float('-inf'))
        p = logits.softmax(-1)
        probs.append(p)
        return p @ v

    for layer in model.layers:
        layer.attn.scaled_dot_product_attention = recorder
    _, mask = _forward(model, torch.randn(2, 1, 32, 32))
    src = torch.cat([torch.tensor([0., 1.]), mask.flatten()])
    cross = src[:, None] != src[None, :]
    assert len(probs) == len(model.layers)
    for p in probs:
        assert (p[..., cross] == 0).all()
        torch.testing.assert_close(p.sum(-1), torch.ones_like(p.sum(-1)))


def test_equals_sparse_plain_vit_encoder():
    """Each source behaves as a plain ViT run on its visible tokens only."""
    model = _vit()
    x = torch.randn(2, 1, 32, 32)
    tokens, mask = _forward(model, x)
    own = mask[0, :, 0] == 0
    with torch.no_grad():
        patches = model.patch_embed(x)[0] + model.pos_embed[:, 1:]
        cls = model.cls_token + model.pos_embed[:, :1]
        seq = torch.cat([cls, patches[:1, own]], dim=1)
        for layer in model.layers:
            seq = layer(seq)
        seq = model.ln1(seq)
    torch.testing.assert_close(
        tokens[0, own], seq[0, 1:], atol=1e-5, rtol=1e-4)


def test_loads_into_plain_vision_transformer(tmp_path):
    model = _vit()
    plain = VisionTransformer(**KW, out_type='raw')
    missing, unexpected = plain.load_state_dict(
        model.state_dict(), strict=True)
    assert missing == [] and unexpected == []
    x = torch.randn(2, 1, 32, 32)
    plain.eval()
    with torch.no_grad():
        ref = plain(x)[0]
        torch.testing.assert_close(model(x, mask=None)[0], ref)
        torch.testing.assert_close(model(x, mask=False)[0], ref)
    # fine-tuning flow: algorithm checkpoint, prefix 'backbone.'
    ckpt = osp.join(tmp_path, 'mixmim_vit.pth')
    torch.save(
        {
            'state_dict': {
                f'backbone.{k}': v
                for k, v in model.state_dict().items()
            }
        }, ckpt)
    plain = VisionTransformer(
        **KW,
        init_cfg=dict(type='Pretrained', checkpoint=ckpt, prefix='backbone.'))
    plain.init_weights()
    for k, v in model.state_dict().items():
        torch.testing.assert_close(plain.state_dict()[k], v)


def test_gradients_reach_patch_embedding():
    model = _vit()
    model.train()
    tokens, _ = model(torch.randn(2, 1, 32, 32))
    tokens.pow(2).mean().backward()
    assert model.patch_embed.projection.weight.grad.abs().sum() > 0
    assert model.cls_token.grad.abs().sum() > 0


def test_odd_batch_raises():
    model = _vit()
    with pytest.raises(ValueError, match='even'):
        model(torch.randn(3, 1, 32, 32))


@pytest.mark.parametrize('kwargs, field', [
    (dict(cell_size=6), 'cell_size'),
    (dict(cell_size=12), 'cell_size'),
    (dict(cell_size=32), 'cell_size'),
    (dict(mask_ratio=0.0), 'mask_ratio'),
    (dict(mask_ratio=1.0), 'mask_ratio'),
    (dict(mask_ratio=0.5, range_mask_ratio=0.6), 'range_mask_ratio'),
])
def test_bad_config(kwargs, field):
    with pytest.raises(ValueError, match=field):
        MixMIMViT(**{**KW, 'cell_size': 8, **kwargs})
