# Copyright (c) OpenMMLab. All rights reserved.
"""Official LocalMIM ViT checkpoint -> plugin / mmpretrain, checked against
an independent forward written on the official key names."""
import importlib.util
import os.path as osp
import subprocess
import sys
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from helpers import REPO_ROOT, subprocess_env
from mmpretrain.registry import MODELS

import mim_plugins  # noqa: F401

SCRIPT = osp.join(REPO_ROOT,
                  'tools/model_converters/localmim_to_mmpretrain.py')
spec = importlib.util.spec_from_file_location('localmim_to_mmpretrain', SCRIPT)
converter = importlib.util.module_from_spec(spec)
spec.loader.exec_module(converter)

D, DEPTH, HEADS, P, IMG, C = 32, 8, 2, 4, 16, 3
DD, DHEADS, NBINS = 16, 2, 18
N = (IMG // P)**2
TAPS = [1, 3, DEPTH - 3, DEPTH - 1]  # official ID
SCALES = [4., 2., 1., .5]
OUT = C * NBINS


def official_state_dict(seed=0):
    """Random tensors under the official ViT/models_mim.py names."""
    g = torch.Generator().manual_seed(seed)

    def t(*shape):
        return torch.randn(*shape, generator=g) * 0.2

    sd = OrderedDict()

    def block(prefix, d):
        sd[prefix + 'norm1.weight'] = 1 + t(d)
        sd[prefix + 'norm1.bias'] = t(d)
        sd[prefix + 'attn.qkv.weight'] = t(3 * d, d)
        sd[prefix + 'attn.qkv.bias'] = t(3 * d)
        sd[prefix + 'attn.proj.weight'] = t(d, d)
        sd[prefix + 'attn.proj.bias'] = t(d)
        sd[prefix + 'norm2.weight'] = 1 + t(d)
        sd[prefix + 'norm2.bias'] = t(d)
        sd[prefix + 'mlp.fc1.weight'] = t(4 * d, d)
        sd[prefix + 'mlp.fc1.bias'] = t(4 * d)
        sd[prefix + 'mlp.fc2.weight'] = t(d, 4 * d)
        sd[prefix + 'mlp.fc2.bias'] = t(d)

    sd['cls_token'] = t(1, 1, D)
    sd['pos_embed'] = t(1, 1 + N, D)
    sd['patch_embed.proj.weight'] = t(D, C, P, P)
    sd['patch_embed.proj.bias'] = t(D)
    for i in range(DEPTH):
        block(f'blocks.{i}.', D)
    for k in range(4):
        sd[f'norm.{k}.weight'] = 1 + t(D)
        sd[f'norm.{k}.bias'] = t(D)
    for k, s in enumerate(SCALES):
        p = f'decoder.{k}.'
        sd[p + 'mask_token'] = t(1, 1, DD)
        sd[p + 'pos_embed'] = t(1, 1 + N, DD)
        sd[p + 'embed.weight'] = t(DD, D)
        sd[p + 'embed.bias'] = t(DD)
        block(p + 'blocks.0.', DD)
        sd[p + 'norm.weight'] = 1 + t(DD)
        sd[p + 'norm.bias'] = t(DD)
        if s == 4:
            sd[p + 'pred.0.weight'] = t(DD, DD // 2, 2, 2)
            sd[p + 'pred.0.bias'] = t(DD // 2)
            sd[p + 'pred.1.weight'] = 1 + t(DD // 2)
            sd[p + 'pred.1.bias'] = t(DD // 2)
            sd[p + 'pred.3.weight'] = t(DD // 2, DD // 4, 2, 2)
            sd[p + 'pred.3.bias'] = t(DD // 4)
            sd[p + 'pred.4.weight'] = t(OUT, DD // 4, 1, 1)
            sd[p + 'pred.4.bias'] = t(OUT)
        elif s == 2:
            sd[p + 'pred.0.weight'] = t(DD, DD // 2, 2, 2)
            sd[p + 'pred.0.bias'] = t(DD // 2)
            sd[p + 'pred.1.weight'] = t(OUT, DD // 2, 1, 1)
            sd[p + 'pred.1.bias'] = t(OUT)
        elif s == 1:
            sd[p + 'pred.0.weight'] = t(OUT, DD, 1, 1)
            sd[p + 'pred.0.bias'] = t(OUT)
        else:
            sd[p + 'pred.1.weight'] = t(OUT, DD, 1, 1)
            sd[p + 'pred.1.bias'] = t(OUT)
    sobel = torch.tensor([[1., 0., -1.], [2., 0., -2.], [1., 0., -1.]])
    for k in range(4):
        sd[f'hog_enc.{k}.conv.weight'] = torch.stack([sobel, sobel.t()])[:,
                                                                         None]
        sd[f'hog_enc.{k}.conv.bias'] = t(2)
    return sd


def ref_block(sd, p, x, heads):
    """timm ``Block`` (pre-norm, qkv bias, GELU MLP), LN eps 1e-6."""
    B, L, d = x.shape
    h = F.layer_norm(x, (d, ), sd[p + 'norm1.weight'], sd[p + 'norm1.bias'],
                     1e-6)
    qkv = F.linear(h, sd[p + 'attn.qkv.weight'], sd[p + 'attn.qkv.bias'])
    q, k, v = qkv.reshape(B, L, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
    attn = ((q @ k.transpose(-2, -1)) * (d // heads)**-0.5).softmax(-1)
    o = (attn @ v).transpose(1, 2).reshape(B, L, d)
    x = x + F.linear(o, sd[p + 'attn.proj.weight'], sd[p + 'attn.proj.bias'])
    h = F.layer_norm(x, (d, ), sd[p + 'norm2.weight'], sd[p + 'norm2.bias'],
                     1e-6)
    h = F.gelu(F.linear(h, sd[p + 'mlp.fc1.weight'], sd[p + 'mlp.fc1.bias']))
    return x + F.linear(h, sd[p + 'mlp.fc2.weight'], sd[p + 'mlp.fc2.bias'])


def ref_encoder(sd, img):
    """Un-masked official encoder: the tap-normed outputs at ``TAPS``."""
    x = F.conv2d(
        img,
        sd['patch_embed.proj.weight'],
        sd['patch_embed.proj.bias'],
        stride=P)
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([sd['cls_token'].expand(len(img), -1, -1), x], 1)
    x = x + sd['pos_embed']
    taps = []
    for i in range(DEPTH):
        x = ref_block(sd, f'blocks.{i}.', x, HEADS)
        if i in TAPS:
            k = TAPS.index(i)
            taps.append(
                F.layer_norm(x, (D, ), sd[f'norm.{k}.weight'],
                             sd[f'norm.{k}.bias'], 1e-6))
    return taps


def ref_decoder(sd, k, x, ids_restore):
    """Official ``MAE_Decoder.forward`` of scale ``SCALES[k]``."""
    p = f'decoder.{k}.'
    x = F.linear(x, sd[p + 'embed.weight'], sd[p + 'embed.bias'])
    B = x.shape[0]
    mask_tokens = sd[p + 'mask_token'].repeat(
        B, ids_restore.shape[1] + 1 - x.shape[1], 1)
    x_ = torch.cat([x[:, 1:], mask_tokens], 1)
    x_ = torch.gather(x_, 1, ids_restore[..., None].repeat(1, 1, DD))
    x = torch.cat([x[:, :1], x_], 1) + sd[p + 'pos_embed']
    x = ref_block(sd, p + 'blocks.0.', x, DHEADS)
    x = F.layer_norm(x, (DD, ), sd[p + 'norm.weight'], sd[p + 'norm.bias'],
                     1e-6)
    h = int(N**.5)
    x = x[:, 1:].transpose(1, 2).reshape(B, DD, h, h)
    s = SCALES[k]
    if s == 4:
        x = F.conv_transpose2d(
            x, sd[p + 'pred.0.weight'], sd[p + 'pred.0.bias'], stride=2)
        u = x.mean(1, keepdim=True)
        var = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(var + 1e-6)
        x = sd[p + 'pred.1.weight'][:, None, None] * x + \
            sd[p + 'pred.1.bias'][:, None, None]
        x = F.gelu(x)
        x = F.conv_transpose2d(
            x, sd[p + 'pred.3.weight'], sd[p + 'pred.3.bias'], stride=2)
        last = 'pred.4.'
    elif s == 2:
        x = F.conv_transpose2d(
            x, sd[p + 'pred.0.weight'], sd[p + 'pred.0.bias'], stride=2)
        last = 'pred.1.'
    elif s == 1:
        last = 'pred.0.'
    else:
        x = F.avg_pool2d(x, 2)
        last = 'pred.1.'
    x = F.conv2d(x, sd[p + last + 'weight'], sd[p + last + 'bias'])
    return x.flatten(2).transpose(1, 2)


def build_plugin():
    return MODELS.build(
        dict(
            type='LocalMIM',
            backbone=dict(
                type='LocalMIMViT',
                arch=dict(
                    embed_dims=D,
                    num_layers=DEPTH,
                    num_heads=HEADS,
                    feedforward_channels=4 * D),
                img_size=IMG,
                patch_size=P),
            neck=dict(
                type='LocalMIMNeck',
                num_patches=N,
                embed_dim=D,
                out_channels=[OUT] * 4,
                decoder_embed_dim=DD,
                decoder_num_heads=DHEADS),
            head=dict(
                type='LocalMIMHead',
                patch_size=P,
                in_channels=C,
                n_bins=NBINS,
                hog_bias=True)))


def test_pretrain_round_trip_matches_reference_forward():
    sd = official_state_dict()
    converted = converter.convert_localmim_vit(sd, 'pretrain')
    model = build_plugin()
    model.load_state_dict(converted, strict=True)
    model.eval()
    img = torch.randn(
        2, C, IMG, IMG, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref_taps = ref_encoder(sd, img)
        taps = model.extract_feat(img)  # un-masked, tap-normed
        for a, b in zip(taps, ref_taps):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
        # masked path: same masking draw for both
        torch.manual_seed(7)
        latents, mask, ids_restore = model.backbone(img)
        preds = model.neck(latents, ids_restore)
        for k in range(4):
            ref = ref_decoder(sd, k, latents[k], ids_restore)
            assert preds[k].shape == ref.shape
            torch.testing.assert_close(preds[k], ref, atol=1e-5, rtol=1e-4)
    # the frozen ViT-L HOG bias is carried over
    for k in range(4):
        assert torch.equal(model.head.hog[k].bias,
                           sd[f'hog_enc.{k}.conv.bias'])


def test_backbone_format_loads_into_vision_transformer():
    sd = official_state_dict()
    converted = converter.convert_localmim_vit(sd, 'backbone')
    assert all(k.startswith('backbone.') for k in converted)
    assert not any('tap_norms' in k for k in converted)
    vit = MODELS.build(
        dict(
            type='VisionTransformer',
            arch=dict(
                embed_dims=D,
                num_layers=DEPTH,
                num_heads=HEADS,
                feedforward_channels=4 * D),
            img_size=IMG,
            patch_size=P,
            final_norm=False,
            out_type='raw',
            out_indices=TAPS))
    state = {k[len('backbone.'):]: v for k, v in converted.items()}
    vit.load_state_dict(state, strict=True)
    vit.eval()
    img = torch.randn(2, C, IMG, IMG)
    with torch.no_grad():
        outs = vit(img)
        ref_taps = ref_encoder(sd, img)
    for k, (a, b) in enumerate(zip(outs, ref_taps)):
        a = F.layer_norm(a, (D, ), sd[f'norm.{k}.weight'],
                         sd[f'norm.{k}.bias'], 1e-6)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_cli_and_errors(tmp_path):
    src, dst = tmp_path / 'official.pth', tmp_path / 'out.pth'
    torch.save(dict(model=official_state_dict(), epoch=1599), src)
    subprocess.run([sys.executable, SCRIPT,
                    str(src), str(dst)],
                   check=True,
                   env=subprocess_env(),
                   cwd=REPO_ROOT)
    out = torch.load(dst, weights_only=True)['state_dict']
    assert 'neck.decoders.0.pred.4.weight' in out
    with pytest.raises(ValueError, match='out_format'):
        converter.convert_localmim_vit(official_state_dict(), 'swin')
    with pytest.raises(KeyError, match='blocks'):
        converter.convert_localmim_vit({'layers.0.w': torch.ones(1)})
