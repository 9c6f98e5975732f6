# Copyright (c) OpenMMLab. All rights reserved.
"""Official LocalMIM Swin checkpoint -> plugin / mmpretrain, checked against
an independent forward written on the official key names."""
import importlib.util
import os.path as osp
import subprocess
import sys
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import pytest
import torch
import torch.nn.functional as F
from helpers import REPO_ROOT, subprocess_env
from mmengine.config import Config
from mmpretrain.models.utils import PatchMerging
from mmpretrain.registry import MODELS

import mim_plugins  # noqa: F401

SCRIPT = osp.join(REPO_ROOT,
                  'tools/model_converters/localmim_to_mmpretrain.py')
spec = importlib.util.spec_from_file_location('localmim_to_mmpretrain', SCRIPT)
converter = importlib.util.module_from_spec(spec)
spec.loader.exec_module(converter)

# 128 px, patch 4: stage maps 32/16/8/4 with 4x4 windows (shifted by 2 in
# stages 0-2; stage 3 is one window, so unshifted as officially); taps after
# merging 16/8/4/4; 32-px mask cells: a 4x4 mask grid.
D, DEPTHS, HEADS, WS, P, IMG, C = 32, [2, 2, 2, 2], [1, 2, 4, 8], 4, 4, 128, 3
DD, DHEADS, NBINS = 32, 2, 9
OUT = C * NBINS
CELL = 32
TAP_MULT = [2, 4, 8, 8]  # official tap widths, x D
TAP_GRIDS = [16, 8, 4, 4]
EPS = 1e-6  # official `partial(nn.LayerNorm, eps=1e-6)`
LN = dict(type='LN', eps=EPS)
ARCH = dict(embed_dims=D, depths=DEPTHS, num_heads=HEADS)
# every LayerNorm of mmpretrain's Swin at the official eps
SWIN_NORMS = dict(
    norm_cfg=LN,
    patch_cfg=dict(norm_cfg=LN),
    stage_cfgs=dict(
        block_cfgs=dict(norm_cfg=LN), downsample_cfg=dict(norm_cfg=LN)))


def official_index(w: int) -> torch.Tensor:
    """``WindowAttention.relative_position_index`` of the official code."""
    coords = torch.stack(
        torch.meshgrid(torch.arange(w), torch.arange(w),
                       indexing='ij')).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    rel = rel + (w - 1)
    rel[:, :, 0] *= 2 * w - 1
    return rel.sum(-1)


def stage_window(i: int) -> Tuple[int, int, int]:
    """(map side, window, shift of odd blocks) of official stage ``i``."""
    res = IMG // P >> i
    if res <= WS:  # official: no partition, no shift on a small map
        return res, res, 0
    return res, WS, WS // 2


def official_state_dict(seed: int = 0,
                        hog_bias: bool = True) -> Dict[str, torch.Tensor]:
    """Random tensors under the official ``Swin/models_mim.py`` names."""
    g = torch.Generator().manual_seed(seed)

    def t(*shape, std=0.2):
        return torch.randn(*shape, generator=g) * std

    sd = OrderedDict()

    def norm(prefix, d):
        sd[prefix + 'weight'] = 1 + t(d)
        sd[prefix + 'bias'] = t(d)

    def timm_block(prefix, d):
        norm(prefix + 'norm1.', d)
        sd[prefix + 'attn.qkv.weight'] = t(3 * d, d)
        sd[prefix + 'attn.qkv.bias'] = t(3 * d)
        sd[prefix + 'attn.proj.weight'] = t(d, d)
        sd[prefix + 'attn.proj.bias'] = t(d)
        norm(prefix + 'norm2.', d)
        sd[prefix + 'mlp.fc1.weight'] = t(4 * d, d)
        sd[prefix + 'mlp.fc1.bias'] = t(4 * d)
        sd[prefix + 'mlp.fc2.weight'] = t(d, 4 * d)
        sd[prefix + 'mlp.fc2.bias'] = t(d)

    sd['encoder.patch_embed.proj.weight'] = t(D, C, P, P)
    sd['encoder.patch_embed.proj.bias'] = t(D)
    norm('encoder.patch_embed.norm.', D)
    for i, (depth, heads) in enumerate(zip(DEPTHS, HEADS)):
        d, (_, w, _) = D * 2**i, stage_window(i)
        for j in range(depth):
            p = f'encoder.layers.{i}.blocks.{j}.'
            timm_block(p, d)
            sd[p + 'attn.relative_position_bias_table'] = t(
                (2 * w - 1)**2, heads, std=1.)
            sd[p + 'attn.relative_position_index'] = official_index(w)
        if i < len(DEPTHS) - 1:
            sd[f'encoder.layers.{i}.downsample.reduction.weight'] = t(
                2 * d, 4 * d)
            norm(f'encoder.layers.{i}.downsample.norm.', 4 * d)
    for k, s in enumerate(TAP_MULT):
        norm(f'encoder.norm.{k}.', D * s)
    for k, (s, grid) in enumerate(zip(TAP_MULT, TAP_GRIDS)):
        p, dd = f'decoder.{k}.', DD // 2 if k == 0 else DD
        sd[p + 'embed.weight'] = t(dd, D * s)
        sd[p + 'embed.bias'] = t(dd)
        sd[p + 'mask_token'] = t(1, 1, dd)
        sd[p + 'pos_embed'] = t(1, grid * grid, dd)
        timm_block(p + 'blocks.0.', dd)
        norm(p + 'norm.', dd)
        sd[p + 'pred.weight'] = t(OUT, dd)
        sd[p + 'pred.bias'] = t(OUT)
    sobel = torch.tensor([[1., 0., -1.], [2., 0., -2.], [1., 0., -1.]])
    for k in range(4):
        sd[f'hog_enc.{k}.conv.weight'] = torch.stack([sobel, sobel.t()])[:,
                                                                         None]
        if hog_bias:
            sd[f'hog_enc.{k}.conv.bias'] = t(2)
    return sd


def ln(sd, p, x):
    d = x.shape[-1]
    return F.layer_norm(x, (d, ), sd[p + 'weight'], sd[p + 'bias'], EPS)


def attention(sd, p, x, heads, bias=None):
    """Multi-head self-attention, plus an additive (heads, N, N) bias."""
    B, N, d = x.shape
    qkv = F.linear(x, sd[p + 'attn.qkv.weight'], sd[p + 'attn.qkv.bias'])
    q, k, v = qkv.reshape(B, N, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
    attn = (q * (d // heads)**-0.5) @ k.transpose(-2, -1)
    if bias is not None:
        attn = attn + bias
    o = (attn.softmax(-1) @ v).transpose(1, 2).reshape(B, N, d)
    return F.linear(o, sd[p + 'attn.proj.weight'], sd[p + 'attn.proj.bias'])


def mlp(sd, p, x):
    h = F.gelu(F.linear(x, sd[p + 'mlp.fc1.weight'], sd[p + 'mlp.fc1.bias']))
    return F.linear(h, sd[p + 'mlp.fc2.weight'], sd[p + 'mlp.fc2.bias'])


def swin_block(sd, p, x, coords, heads, window, shift):
    """Official block as GreenMIM's "masking" mode runs it.

    Tokens (any subset, any order) attend to the tokens of the same group
    ``(coord + (window - shift) % window) // window`` (Swin's shifted
    windows cut by its shift mask), with the relative position bias read at
    the coordinate difference; other pairs get -100 as Swin's shift mask.
    """
    group = (coords + (window - shift) % window) // window
    same = (group[:, None] == group[None]).all(-1)
    rel = coords[:, None] - coords[None] + window - 1
    index = (rel[..., 0] * (2 * window - 1) + rel[..., 1]).masked_fill(
        ~same, 0)
    table = sd[p + 'attn.relative_position_bias_table']
    bias = table[index] * same[..., None] - 100. * (~same)[..., None]
    x = x + attention(sd, p, ln(sd, p + 'norm1.', x), heads,
                      bias.permute(2, 0, 1))
    return x + mlp(sd, p, ln(sd, p + 'norm2.', x))


def vit_block(sd, p, x, heads):
    """timm ``Block`` of the official decoders."""
    x = x + attention(sd, p, ln(sd, p + 'norm1.', x), heads)
    return x + mlp(sd, p, ln(sd, p + 'norm2.', x))


def ref_encoder(
    sd: Dict[str, torch.Tensor],
    img: torch.Tensor,
    visible: Optional[torch.Tensor] = None
) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """Official encoder on the visible tokens (all when ``visible`` is None).

    Returns:
        list: Per tap, the tap-normed visible tokens (B, N_vis, C_k) and
        their raster indices on the tap grid.
    """
    x = F.conv2d(
        img,
        sd['encoder.patch_embed.proj.weight'],
        sd['encoder.patch_embed.proj.bias'],
        stride=P)
    B, _, H, W = x.shape
    x = ln(sd, 'encoder.patch_embed.norm.', x.flatten(2).transpose(1, 2))
    vis = torch.ones(H, W, dtype=torch.bool) if visible is None else visible
    pos = vis.flatten().nonzero().squeeze(1)
    x = x[:, pos]
    taps = []
    for i, heads in enumerate(HEADS):
        coords = torch.stack([pos // W, pos % W], 1)
        _, window, shift = stage_window(i)
        for j in range(DEPTHS[i]):
            x = swin_block(sd, f'encoder.layers.{i}.blocks.{j}.', x, coords,
                           heads, window, shift if j % 2 else 0)
        if i < len(HEADS) - 1:
            # merge on the full map: the 2x2 children are in one mask cell
            p = f'encoder.layers.{i}.downsample.'
            full = x.new_zeros(B, H * W, x.shape[-1])
            full[:, pos] = x
            m = full.view(B, H, W, -1)
            # official order: row-major children (dy, dx), channel-major
            merged = torch.cat([
                m[:, 0::2, 0::2], m[:, 0::2, 1::2], m[:, 1::2, 0::2],
                m[:, 1::2, 1::2]
            ], -1).flatten(1, 2)
            merged = F.linear(
                ln(sd, p + 'norm.', merged), sd[p + 'reduction.weight'])
            H, W, vis = H // 2, W // 2, vis[0::2, 0::2]
            pos = vis.flatten().nonzero().squeeze(1)
            x = merged[:, pos]
        taps.append((ln(sd, f'encoder.norm.{i}.', x), pos))
    return taps


def ref_decoder(sd, k, x, visible):
    """Official ``ViT_Decoder`` of tap ``k`` on raster tokens (B, L, C)."""
    p = f'decoder.{k}.'
    B, L, _ = x.shape
    dd = sd[p + 'mask_token'].shape[-1]
    y = sd[p + 'mask_token'].expand(B, L, dd).clone()
    y[:, visible] = F.linear(x[:, visible], sd[p + 'embed.weight'],
                             sd[p + 'embed.bias'])
    y = vit_block(sd, p + 'blocks.0.', y + sd[p + 'pos_embed'], DHEADS)
    return F.linear(
        ln(sd, p + 'norm.', y), sd[p + 'pred.weight'], sd[p + 'pred.bias'])


def build_plugin(hog_bias=True):
    return MODELS.build(
        dict(
            type='LocalMIM',
            backbone=dict(
                type='LocalMIMSwin',
                arch=ARCH,
                img_size=IMG,
                window_size=WS,
                drop_path_rate=0.,
                mask_ratio=0.75,
                mask_patch_size=CELL,
                **SWIN_NORMS),
            neck=dict(
                type='LocalMIMSwinNeck',
                in_channels=[D * s for s in TAP_MULT],
                grids=TAP_GRIDS,
                out_channels=[OUT] * 4,
                decoder_embed_dim=DD,
                decoder_num_heads=DHEADS),
            head=dict(
                type='LocalMIMHead',
                patch_size=CELL,
                scales=[4, 2, 1, 1],
                in_channels=C,
                n_bins=NBINS,
                hog_bias=hog_bias)))


def images(n=2, seed=1):
    return torch.randn(
        n, C, IMG, IMG, generator=torch.Generator().manual_seed(seed))


def test_pretrain_round_trip_matches_reference_forward():
    sd = official_state_dict()
    converted = converter.convert_localmim_swin(sd, 'pretrain')
    model = build_plugin()
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(converted, strict=True)  # nothing left over
    # the carried index buffers are the ones mmpretrain computes
    index_keys = [k for k in fresh if k.endswith('relative_position_index')]
    assert len(index_keys) == sum(DEPTHS)
    for k in index_keys:
        assert torch.equal(converted[k], fresh[k])
    model.eval()
    img = images()
    with torch.no_grad():
        # un-masked: every tap equals the official tap-normed stage output
        taps = model.extract_feat(img)
        ref = ref_encoder(sd, img)
        assert len(taps) == len(ref) == 4
        for k, (tap, (ref_tap, _)) in enumerate(zip(taps, ref)):
            assert tap.shape == (2, D * TAP_MULT[k], TAP_GRIDS[k],
                                 TAP_GRIDS[k])
            torch.testing.assert_close(
                tap.flatten(2).transpose(1, 2), ref_tap, atol=1e-5, rtol=1e-4)
        # masked: the visible taps equal the official visible-only encoder
        torch.manual_seed(7)
        latents, mask, _ = model.backbone(img)
        cells = mask[0].reshape(IMG // CELL, IMG // CELL) == 0
        assert 0 < cells.sum() < cells.numel()
        side = CELL // P
        visible = cells.repeat_interleave(side, 0).repeat_interleave(side, 1)
        ref = ref_encoder(sd, img, visible)
        for lat, (ref_tap, pos) in zip(latents, ref):
            torch.testing.assert_close(
                lat[:, pos], ref_tap, atol=1e-5, rtol=1e-4)
        # the decoders read the visible tokens, mask tokens elsewhere
        preds = model.neck(latents, mask)
        for k, (lat, (_, pos)) in enumerate(zip(latents, ref)):
            vis = torch.zeros(lat.shape[1], dtype=torch.bool)
            vis[pos] = True
            expected = ref_decoder(sd, k, lat, vis)
            assert preds[k].shape == (2, TAP_GRIDS[k]**2, OUT)
            torch.testing.assert_close(
                preds[k], expected, atol=1e-5, rtol=1e-4)
    # the frozen HOG bias is carried over
    for k in range(4):
        assert torch.equal(model.head.hog[k].bias,
                           sd[f'hog_enc.{k}.conv.bias'])


def test_backbone_format_loads_into_swin_transformer():
    sd = official_state_dict(hog_bias=False)
    converted = converter.convert_localmim_swin(sd, 'backbone')
    assert all(k.startswith('backbone.') for k in converted)
    # only the last tap norm stays, as the fine-tuning model's norm3
    assert {k
            for k in converted if k.startswith('backbone.norm')
            } == {'backbone.norm3.weight', 'backbone.norm3.bias'}
    assert torch.equal(converted['backbone.norm3.weight'],
                       sd['encoder.norm.3.weight'])
    swin = MODELS.build(
        dict(
            type='SwinTransformer',
            arch=ARCH,
            img_size=IMG,
            window_size=WS,
            drop_path_rate=0.,
            out_indices=(3, ),
            **SWIN_NORMS))
    state = {k[len('backbone.'):]: v for k, v in converted.items()}
    swin.load_state_dict(state, strict=True)
    swin.eval()
    img = images(seed=2)
    with torch.no_grad():
        out = swin(img)
        ref_tap, _ = ref_encoder(sd, img)[3]
    assert len(out) == 1 and out[0].shape == (2, 8 * D, 4, 4)
    torch.testing.assert_close(
        out[0].flatten(2).transpose(1, 2), ref_tap, atol=1e-5, rtol=1e-4)


def test_finetune_config_backbone_loads_converted_weights():
    """The Swin fine-tuning benchmark's backbone (its norms, pooling and
    everything but the size) takes a converted checkpoint strictly."""
    cfg = Config.fromfile(
        osp.join(
            REPO_ROOT, 'configs/localmim/benchmarks/'
            'swin-base-w7_8xb128-coslr-100e_in1k.py'))
    backbone = cfg.model.backbone.copy()
    backbone.update(arch=ARCH, img_size=IMG, init_cfg=None)
    backbone.stage_cfgs.block_cfgs.window_size = WS
    swin = MODELS.build(backbone)
    norms = [m for m in swin.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and all(m.eps == EPS for m in norms)
    converted = converter.convert_localmim_swin(
        official_state_dict(hog_bias=False), 'backbone')
    state = {k[len('backbone.'):]: v for k, v in converted.items()}
    swin.load_state_dict(state, strict=True)
    assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == 0.9
    assert cfg.train_dataloader.batch_size * \
        cfg.optim_wrapper.accumulative_counts * 8 == 2048
    warmup, cosine = cfg.param_scheduler
    assert (warmup.end, cosine.begin, cosine.end) == (20, 20, 100)


def test_swin_large_finetune_config_takes_the_small_last_window(monkeypatch):
    """Swin-L's windows (14, one 7x7 window on the 7x7 last map, a 13x13
    bias table) scaled down: window 8 on maps 32/16/8 and 4 on the 4x4 last
    map. The Swin-L fine-tuning config's per-stage windows take the
    converted weights strictly and compute the official function."""
    monkeypatch.setitem(globals(), 'WS', 8)
    assert [stage_window(i) for i in range(4)] == [(32, 8, 4), (16, 8, 4),
                                                   (8, 8, 0), (4, 4, 0)]
    sd = official_state_dict(hog_bias=False)
    table = 'encoder.layers.{}.blocks.0.attn.relative_position_bias_table'
    assert sd[table.format(2)].shape[0] == 15 * 15
    assert sd[table.format(3)].shape[0] == 7 * 7
    cfg = Config.fromfile(
        osp.join(
            REPO_ROOT, 'configs/localmim/benchmarks/'
            'swin-large-w14_8xb32-coslr-100e_in1k.py'))
    backbone = cfg.model.backbone.copy()
    assert backbone.window_size == 14
    assert [c.get('window_size')
            for c in backbone.stage_cfgs] == [None, None, None, 7]
    backbone.stage_cfgs[3].window_size = 4
    backbone.update(
        arch=ARCH,
        img_size=IMG,
        window_size=8,
        drop_path_rate=0.,
        init_cfg=None)
    swin = MODELS.build(backbone)
    converted = converter.convert_localmim_swin(sd, 'backbone')
    swin.load_state_dict(
        {
            k[len('backbone.'):]: v
            for k, v in converted.items()
        }, strict=True)
    swin.eval()
    img = images(seed=3)
    with torch.no_grad():
        out = swin(img)[-1]
        ref_tap, _ = ref_encoder(sd, img)[3]
    torch.testing.assert_close(
        out.flatten(2).transpose(1, 2), ref_tap, atol=1e-5, rtol=1e-4)
    assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == 0.8
    assert cfg.train_dataloader.batch_size * \
        cfg.optim_wrapper.accumulative_counts * 8 == 2048


def test_patch_merging_order():
    """The official merge of ``x(2r+dy, 2c+dx)`` is child ``dy * 2 + dx``."""
    Cm, H = 3, 4
    # official reduction whose output q copies channel 0 of child q
    weight = torch.zeros(4, 4 * Cm)
    for q in range(4):
        weight[q, q * Cm] = 1.
    merge = PatchMerging(Cm, 4, norm_cfg=None)
    merge.reduction.weight.data.copy_(converter.merge_order_to_unfold(weight))
    # channel 0 of every token codes its (row, col)
    x = torch.zeros(1, H * H, Cm)
    x[0, :, 0] = torch.arange(H * H, dtype=torch.float)
    out, size = merge(x, (H, H))
    assert size == (H // 2, H // 2)
    rows, cols = torch.meshgrid(
        torch.arange(0, H, 2), torch.arange(0, H, 2), indexing='ij')
    top_left = (rows * H + cols).flatten().float()
    # (0, 0), right neighbour, the one below, diagonal (not Microsoft's
    # x0/x1/x2/x3 order, which puts the one below second)
    expected = torch.stack(
        [top_left, top_left + 1, top_left + H, top_left + H + 1], -1)
    assert torch.equal(out[0], expected)
    # the merge norm is permuted alike
    official = torch.arange(4 * Cm, dtype=torch.float)  # q * Cm + c
    unfold = converter.merge_order_to_unfold(official)
    for c in range(Cm):
        for q in range(4):
            assert unfold[c * 4 + q] == q * Cm + c
    sd = official_state_dict()
    key = 'encoder.layers.1.downsample.reduction.weight'
    converted = converter.convert_localmim_swin(sd, 'pretrain')
    new = converted['backbone.stages.1.downsample.reduction.weight']
    assert new.shape == sd[key].shape and not torch.equal(new, sd[key])
    assert torch.equal(new, converter.merge_order_to_unfold(sd[key]))


def test_cli_and_errors(tmp_path):
    sd = official_state_dict()
    src, dst = tmp_path / 'official.pth', tmp_path / 'out.pth'
    torch.save(dict(model=sd, epoch=399), src)
    subprocess.run([
        sys.executable, SCRIPT,
        str(src),
        str(dst), '--out-format', 'backbone'
    ],
                   check=True,
                   env=subprocess_env(),
                   cwd=REPO_ROOT)
    out = torch.load(dst, weights_only=True)['state_dict']
    expected = converter.convert_localmim_swin(sd, 'backbone')
    assert list(out) == list(expected)
    assert all(torch.equal(out[k], expected[k]) for k in out)
    # auto-detection
    assert converter.detect_arch(sd) == 'swin'
    assert converter.detect_arch({'blocks.0.norm1.weight': 1}) == 'vit'
    with pytest.raises(KeyError, match='encoder.layers'):
        converter.detect_arch({'layers.0.blocks.0.norm1.weight': 1})
    with pytest.raises(KeyError, match='encoder.layers'):
        converter.convert_localmim_swin({'blocks.0.norm1.weight': 1})
    with pytest.raises(ValueError, match='out_format'):
        converter.convert_localmim_swin(sd, 'vit')
    # unknown keys are named
    for bad in ('encoder.layers.0.blocks.0.attn.foo',
                'encoder.layers.0.upsample.weight', 'decoder.0.head.weight',
                'predictor.weight'):
        with pytest.raises(KeyError, match=bad):
            converter.convert_localmim_swin(dict(sd, **{bad: torch.ones(1)}))
    # a relative position index that is not Swin's is refused
    key = 'encoder.layers.0.blocks.0.attn.relative_position_index'
    with pytest.raises(ValueError, match='relative position index'):
        converter.convert_localmim_swin(
            dict(sd, **{key: torch.zeros_like(sd[key])}))
