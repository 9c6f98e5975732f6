# Copyright (c) OpenMMLab. All rights reserved.
"""Converters to upstream key layouts: mmseg ``MAE`` and mmdet ViTDet."""
import importlib.util
import math
import os.path as osp
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from helpers import REPO_ROOT, TINY_ARCH, subprocess_env, tiny_backbone
from mmengine.logging import HistoryBuffer

import mim_plugins  # noqa: F401  (registers the plugin backbones)
from mim_plugins.utils.checkpoint import vit_state_dict

TOOLS = osp.join(REPO_ROOT, 'tools', 'model_converters')


def load_tool(name: str):
    """Import a converter script as a module."""
    spec = importlib.util.spec_from_file_location(
        name, osp.join(TOOLS, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


to_mmseg_mae = load_tool('to_mmseg_mae')
to_vitdet = load_tool('to_vitdet')

DIMS = TINY_ARCH['embed_dims']
DEPTH = TINY_ARCH['num_layers']


def randomize_(module: nn.Module, seed: int = 0) -> nn.Module:
    """Fill every parameter with noise: default LN ones/zeros or zero tokens
    would hide a wrong key mapping."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(
                torch.randn(p.shape, generator=gen) * 0.2 +
                (1.0 if p.dim() == 1 else 0.0))
    module.eval()  # some backbones' train() returns None
    return module


def mmpretrain_vit(**kwargs) -> nn.Module:
    """A tiny random mmpretrain VisionTransformer (16 px, 4-px patches)."""
    from mmpretrain.registry import MODELS
    cfg = tiny_backbone(
        'VisionTransformer', out_type='featmap', patch_cfg=dict(in_channels=3))
    cfg.update(kwargs)
    return randomize_(MODELS.build(cfg))


def pretrain_checkpoint(vit: nn.Module) -> dict:
    """A pre-training checkpoint around ``vit`` (neck/head keys included)."""
    state = {f'backbone.{k}': v for k, v in vit.state_dict().items()}
    state['neck.decoder_pos_embed'] = torch.zeros(1, 17, 16)
    state['head.dummy'] = torch.zeros(1)
    return dict(state_dict=state, meta=dict(epoch=3))


def mmseg_mae(**kwargs) -> nn.Module:
    """A tiny mmseg ``MAE`` with the ViT's dimensions."""
    from mmseg.models.backbones import MAE
    cfg = dict(
        img_size=16,
        patch_size=4,
        embed_dims=DIMS,
        num_layers=DEPTH,
        num_heads=TINY_ARCH['num_heads'],
        mlp_ratio=TINY_ARCH['feedforward_channels'] // DIMS,
        out_indices=[1, 3],
        norm_cfg=dict(type='LN', eps=1e-6),  # mmpretrain ViT's eps
        init_values=0.1)  # != 1: the converted gammas must override it
    cfg.update(kwargs)
    return MAE(**cfg)


@pytest.mark.parametrize('final_norm,layer_scale', [(True, 0.), (False, .5)])
def test_mmseg_mae_same_features(tmp_path, final_norm, layer_scale):
    vit = mmpretrain_vit(
        final_norm=final_norm,
        out_indices=[1, 3],
        layer_scale_init_value=layer_scale)
    state, skipped = vit_state_dict(pretrain_checkpoint(vit))
    assert skipped == []
    assert not any(k.startswith(('neck.', 'head.')) for k in state)
    out = to_mmseg_mae.convert_to_mmseg_mae(state)
    dst = str(tmp_path / 'mae_mmseg.pth')
    to_mmseg_mae.save_tensors_only(dict(state_dict=out), dst)

    # key check against the real class
    target = mmseg_mae(final_norm=final_norm)
    result = target.load_state_dict(out, strict=False)
    assert all(
        k.endswith(('relative_position_bias_table', 'relative_position_index'))
        for k in result.missing_keys)
    assert len(result.missing_keys) == 2 * DEPTH
    assert result.unexpected_keys == []
    if final_norm:
        # mmseg's default final_norm=False ignores the kept final norm
        result = mmseg_mae(final_norm=False).load_state_dict(out, False)
        assert sorted(result.unexpected_keys) == ['ln1.bias', 'ln1.weight']
    if layer_scale:
        torch.testing.assert_close(out['layers.2.gamma_1'],
                                   vit.layers[2].attn.gamma1.weight)
    else:
        assert torch.equal(out['layers.2.gamma_2'], torch.ones(DIMS))

    # mmseg's own loading path (init_cfg Pretrained, no prefix), then the
    # same features as the ViT
    model = mmseg_mae(
        final_norm=final_norm,
        init_cfg=dict(type='Pretrained', checkpoint=dst))
    model.init_weights()
    model.eval()
    # float64: the two attention implementations round differently in fp32
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        expected, got = vit.double()(x), model.double()(x)
    assert len(got) == len(expected) == 2
    for e, g in zip(expected, got):
        assert g.shape == (2, DIMS, 4, 4)
        torch.testing.assert_close(g, e, rtol=1e-9, atol=1e-9)


def test_mmseg_mae_plugin_backbone_extras():
    from mmpretrain.registry import MODELS
    backbone = randomize_(
        MODELS.build(tiny_backbone('LocalMIMViT', out_indices=[1, 3])))
    state, skipped = vit_state_dict(pretrain_checkpoint(backbone))
    # the tap norms are LocalMIM's, not the ViT's
    assert skipped and all(k.startswith('tap_norms.') for k in skipped)
    out = to_mmseg_mae.convert_to_mmseg_mae(state, keep_final_norm=False)
    target = mmseg_mae(
        patch_size=4, final_norm=False).state_dict()  # 3-channel target
    assert set(out) - set(target) == set()
    assert out['patch_embed.projection.weight'].shape[1] == 1
    # an extracted backbone (no prefix) converts the same
    bare, _ = vit_state_dict(backbone.state_dict())
    assert bare.keys() == state.keys()

    with pytest.raises(KeyError, match='not a ViT'):
        vit_state_dict({'backbone.foo': torch.zeros(1)})
    with pytest.raises(ValueError, match='pre-norm'):
        vit_state_dict(pretrain_checkpoint(mmpretrain_vit(pre_norm=True)))


# ViTDet's ViT lives in mmdet's `projects/ViTDet/vitdet/vit.py`, which the
# mmdet wheel does not ship; the reference below has its parameter names and
# its forward for global attention without relative position
# (`window_size=0`, `use_rel_pos=False`), with the code following upstream.
class _RefAttention(nn.Module):

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads)**-0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, _ = x.shape
        qkv = self.qkv(x).reshape(B, H * W, 3, self.num_heads,
                                  -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, B * self.num_heads, H * W, -1).unbind(0)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        x = (attn @ v).view(B, self.num_heads, H, W,
                            -1).permute(0, 2, 3, 1, 4).reshape(B, H, W, -1)
        return self.proj(x)


class _RefMlp(nn.Module):

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _RefBlock(nn.Module):

    def __init__(self, dim: int, num_heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _RefAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _RefMlp(dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _RefPatchEmbed(nn.Module):

    def __init__(self, patch: int, in_chans: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


class RefViTDetViT(nn.Module):
    """ViTDet ``ViT`` parameter layout (``pretrain_use_cls_token=True``)."""

    def __init__(self, pretrain_img_size: int = 16, patch_size: int = 4):
        super().__init__()
        self.patch_embed = _RefPatchEmbed(patch_size, 3, DIMS)
        grid = pretrain_img_size // patch_size
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, DIMS))
        self.blocks = nn.ModuleList([
            _RefBlock(DIMS, TINY_ARCH['num_heads'],
                      TINY_ARCH['feedforward_channels']) for _ in range(DEPTH)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        pos = self.pos_embed[:, 1:]  # upstream get_abs_pos drops the cls slot
        size = int(math.sqrt(pos.shape[1]))
        h, w = x.shape[1:3]
        pos = pos.reshape(1, size, size, -1)
        if (size, size) != (h, w):
            pos = F.interpolate(
                pos.permute(0, 3, 1, 2), (h, w),
                mode='bicubic',
                align_corners=False).permute(0, 2, 3, 1)
        x = x + pos
        for blk in self.blocks:
            x = blk(x)
        return x.permute(0, 3, 1, 2)


def without_cls_token(vit: nn.Module, **kwargs) -> nn.Module:
    """``vit``'s weights in a ViT without class token.

    ViTDet has no class token, so its features are those of the same ViT
    run on patch tokens only (mmpretrain's ``with_cls_token=False``, whose
    load hook drops the class slot of ``pos_embed``), not those of ``vit``.
    """
    dense = mmpretrain_vit(final_norm=False, with_cls_token=False, **kwargs)
    result = dense.load_state_dict(vit.state_dict(), strict=False)
    assert result.unexpected_keys == ['cls_token'] and not result.missing_keys
    return dense


def vitdet_layout_keys(depth: int) -> set:
    """The documented ViTDet ``ViT`` state-dict keys (no rel-pos)."""
    keys = {'pos_embed', 'patch_embed.proj.weight', 'patch_embed.proj.bias'}
    for i in range(depth):
        for part in ('norm1', 'attn.qkv', 'attn.proj', 'norm2', 'mlp.fc1',
                     'mlp.fc2'):
            keys |= {f'blocks.{i}.{part}.weight', f'blocks.{i}.{part}.bias'}
    return keys


@pytest.mark.parametrize('layer_scale', [0., .5])
def test_vitdet_same_features(layer_scale):
    vit = mmpretrain_vit(final_norm=False, layer_scale_init_value=layer_scale)
    state, _ = vit_state_dict(pretrain_checkpoint(vit))
    out = to_vitdet.convert_to_vitdet(state)
    assert set(out) == vitdet_layout_keys(DEPTH)
    assert 'cls_token' not in out and 'ln1.weight' not in out
    ref = RefViTDetViT()
    for k, v in ref.state_dict().items():
        assert out[k].shape == v.shape, k
    ref.load_state_dict(out, strict=True)
    ref.eval()
    dense = without_cls_token(vit, layer_scale_init_value=layer_scale)
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        expected, got = dense.double()(x)[0], ref.double()(x)
    assert got.shape == (2, DIMS, 4, 4)
    # exact up to the fp32 rounding of the folded layer-scale products
    tol = 1e-5 if layer_scale else 1e-9
    torch.testing.assert_close(got, expected, rtol=tol, atol=tol)
    # the source tensors are not modified by the layer-scale folding
    assert torch.equal(state['layers.0.attn.proj.weight'],
                       vit.layers[0].attn.proj.weight.float())


def test_vitdet_missing_qkv_bias():
    vit = mmpretrain_vit(final_norm=False, qkv_bias=False)
    state, _ = vit_state_dict(pretrain_checkpoint(vit))
    out = to_vitdet.convert_to_vitdet(state)
    assert torch.equal(out['blocks.1.attn.qkv.bias'], torch.zeros(3 * DIMS))
    ref = RefViTDetViT().eval()
    ref.load_state_dict(out, strict=True)
    dense = without_cls_token(vit, qkv_bias=False)
    x = torch.randn(1, 3, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(
            ref.double()(x), dense.double()(x)[0], rtol=1e-9, atol=1e-9)


def test_cli_tensors_only(tmp_path, monkeypatch, capsys):
    vit = mmpretrain_vit(final_norm=True)
    src = str(tmp_path / 'epoch_1.pth')
    ckpt = pretrain_checkpoint(vit)
    # allowlisted runner data, not plain: must be dropped
    ckpt['meta']['message_hub'] = HistoryBuffer()
    torch.save(ckpt, src)

    # the command line once as a subprocess ...
    dst = str(tmp_path / 'mmseg.pth')
    proc = subprocess.run(
        [sys.executable,
         osp.join(TOOLS, 'to_mmseg_mae.py'), src, dst],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '4x4 position grid' in proc.stdout
    mmseg_ckpt = torch.load(dst, map_location='cpu', weights_only=True)
    assert torch.equal(mmseg_ckpt['state_dict']['ln1.weight'], vit.ln1.weight)

    # ... the other entry points in-process
    for tool in (to_mmseg_mae, to_vitdet):
        monkeypatch.setattr(sys, 'argv', ['prog', '--help'])
        with pytest.raises(SystemExit) as exit_info:
            tool.main()
        assert exit_info.value.code == 0
        assert 'usage' in capsys.readouterr().out
    dst = str(tmp_path / 'vitdet.pth')
    monkeypatch.setattr(sys, 'argv', ['prog', src, dst])
    to_vitdet.main()
    vitdet_ckpt = torch.load(dst, map_location='cpu', weights_only=True)
    assert torch.equal(vitdet_ckpt['model']['blocks.0.mlp.fc1.weight'],
                       vit.layers[0].ffn.layers[0][0].weight)

    for loaded in (mmseg_ckpt, vitdet_ckpt):
        assert loaded['meta']['epoch'] == 3
        assert 'message_hub' not in loaded['meta']
