# Copyright (c) OpenMMLab. All rights reserved.
"""Convert an official LocalMIM ViT or Swin pre-training checkpoint.

The official code (Haoqing-Wang/LocalMIM, also huawei-noah/
Efficient-Computing ``Self-supervised/LocalMIM``) saves
``{'model': state_dict, ...}``. The architecture is detected from the keys.

**ViT** (``ViT/models_mim.py``, timm names): ``patch_embed.proj``,
``cls_token``, ``pos_embed``, ``blocks.{i}.{norm1,attn.qkv,attn.proj,norm2,
mlp.fc1,mlp.fc2}``, the tap norms ``norm.{k}``, the decoders
``decoder.{k}.{embed,mask_token,pos_embed,blocks.{j}.*,norm,pred.*}`` and the
HOG layers ``hog_enc.{k}.conv.{weight,bias}``.

``--out-format pretrain`` (default) writes the plugin's :class:`LocalMIM`
layout (``backbone.*``, ``neck.decoders.{k}.*``, ``head.hog.{k}.bias`` for
the frozen ViT-L HOG bias), loadable with ``load_from`` in the LocalMIM
configs. ``--out-format backbone`` writes an mmpretrain
``VisionTransformer`` (``backbone.*`` without the tap norms and decoders) for
fine-tuning with ``init_cfg=dict(type='Pretrained', checkpoint=OUT,
prefix='backbone.')``.

**Swin** (``Swin/models_mim.py``, ``MaskedAutoencoderSwin`` built on
GreenMIM's sparse Swin): ``encoder.patch_embed.{proj,norm}``,
``encoder.layers.{i}.blocks.{j}.{norm1,attn.qkv,attn.proj,
attn.relative_position_bias_table,attn.relative_position_index,norm2,
mlp.fc1,mlp.fc2}``, the patch merging ``encoder.layers.{i}.downsample.
{norm,reduction}`` at the *end* of stage ``i`` (``i < 3``), the tap norms
``encoder.norm.{k}`` (2C, 4C, 8C, 8C: after each stage's merging), the
decoders ``decoder.{k}.{embed,mask_token,pos_embed,blocks.{j}.*,norm,pred}``
(``pred`` is a Linear) and ``hog_enc.{k}.conv.{weight,bias}``. The official
merging concatenates the 2x2 children row-major, channel
``(dy * 2 + dx) * C + c`` (not Microsoft Swin's x0/x1/x2/x3 order); the
``reduction`` columns and ``norm`` are permuted to ``nn.Unfold``'s
``c * 4 + dy * 2 + dx`` of mmpretrain's ``PatchMerging``, so the converted
model computes the pre-trained function (the official fine-tuning code,
``Swin/models_swin.py``, loads them unpermuted into Microsoft's order).
A stage whose map is not larger than the window runs one unshifted window
of the map's size: for the window-14 models at 224 px the last stage has
7x7 windows (a 13x13 bias table), so give that stage ``window_size=7``
(``stage_cfgs``) in mmpretrain.

``pretrain`` writes :class:`LocalMIMSwin` (``backbone.stages.{i}...``,
``backbone.norm{k}``), :class:`LocalMIMSwinNeck` (``neck.decoders.{k}.*``)
and the HOG bias if any. ``backbone`` writes an mmpretrain
``SwinTransformer`` with the last tap norm as its ``norm3`` (the features
of ``out_indices=(3, )``); tap norms 0-2, decoders and HOG are dropped. The
``relative_position_index`` buffers are kept (checked to be Swin's index,
as mmpretrain recomputes): ``WindowMSA`` stores them, so the result loads
strictly. The Sobel kernels ``hog_enc.{k}.conv.weight`` are constants and
dropped in both architectures. The official LayerNorms use eps 1e-6
(mmpretrain's Swin defaults to 1e-5).

Examples:
    python tools/model_converters/localmim_to_mmpretrain.py \
        checkpoint-1599.pth localmim_vit-base-p16_in1k.pth
    python tools/model_converters/localmim_to_mmpretrain.py \
        checkpoint-399.pth localmim_swin-base-w7_in1k_backbone.pth \
        --out-format backbone
"""
import argparse
import os
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict

import torch

from mim_plugins.utils.checkpoint import (add_unsafe_full_unpickle,
                                          load_checkpoint_file)

# timm block names -> mmpretrain TransformerEncoderLayer names
_BLOCK = [
    ('norm1.', 'ln1.'),
    ('norm2.', 'ln2.'),
    ('mlp.fc1.', 'ffn.layers.0.0.'),
    ('mlp.fc2.', 'ffn.layers.1.'),
    ('attn.qkv.', 'attn.qkv.'),
    ('attn.proj.', 'attn.proj.'),
]

# official (GreenMIM) Swin block names -> mmpretrain SwinBlock names
_SWIN_BLOCK = [
    ('norm1.', 'norm1.'),
    ('norm2.', 'norm2.'),
    ('mlp.fc1.', 'ffn.layers.0.0.'),
    ('mlp.fc2.', 'ffn.layers.1.'),
    ('attn.qkv.', 'attn.w_msa.qkv.'),
    ('attn.proj.', 'attn.w_msa.proj.'),
    ('attn.relative_position_bias_table',
     'attn.w_msa.relative_position_bias_table'),
    ('attn.relative_position_index', 'attn.w_msa.relative_position_index'),
]


def _block(rest: str, table: list = _BLOCK) -> str:
    for old, new in table:
        if rest == old or (old.endswith('.') and rest.startswith(old)):
            return new + rest[len(old):]
    raise KeyError(f'unknown block parameter {rest!r}')


def swin_relative_position_index(window: int) -> torch.Tensor:
    """Swin's (w*w, w*w) index into the relative position bias table."""
    coords = torch.stack(
        torch.meshgrid(
            torch.arange(window), torch.arange(window),
            indexing='ij')).flatten(1)
    rel = coords[:, :, None] - coords[:, None, :] + window - 1
    return rel[0] * (2 * window - 1) + rel[1]


def merge_order_to_unfold(x: torch.Tensor) -> torch.Tensor:
    """Permute the last (4C) axis from the official merge order to unfold's.

    The official (GreenMIM) ``PatchMerging`` concatenates the 2x2 children
    row-major, channel ``(dy * 2 + dx) * C + c``; mmpretrain's
    ``nn.Unfold`` gives ``c * 4 + dy * 2 + dx``.

    Args:
        x (torch.Tensor): ``reduction.weight`` (2C, 4C) or ``norm.*`` (4C).

    Returns:
        torch.Tensor: The same values in unfold's channel order.
    """
    *lead, channels = x.shape
    if channels % 4:
        raise ValueError(f'merged channels must be 4C, got {channels}')
    return x.reshape(*lead, 4,
                     channels // 4).transpose(-1, -2).reshape(*lead, channels)


def convert_localmim_vit(
        state: Dict[str, torch.Tensor],
        out_format: str = 'pretrain') -> 'OrderedDict[str, torch.Tensor]':
    """Map official LocalMIM ViT keys to this plugin's / mmpretrain's.

    Args:
        state (dict): The official ``model`` state dict.
        out_format (str): ``'pretrain'`` (``LocalMIM``) or ``'backbone'``
            (``VisionTransformer`` under ``backbone.``).

    Returns:
        OrderedDict: The converted state dict.
    """
    if out_format not in ('pretrain', 'backbone'):
        raise ValueError("`out_format` must be 'pretrain' or 'backbone', "
                         f'got {out_format!r}')
    if not any(k.startswith('blocks.') for k in state):
        raise KeyError('not an official LocalMIM ViT checkpoint (no '
                       f'`blocks.*` key); keys look like {list(state)[:3]}')
    out = OrderedDict()
    for key, value in state.items():
        if key.startswith('patch_embed.proj.'):
            new = 'backbone.patch_embed.projection.' + key[17:]
        elif key in ('cls_token', 'pos_embed'):
            new = 'backbone.' + key
        elif key.startswith('blocks.'):
            i, rest = key[7:].split('.', 1)
            new = f'backbone.layers.{i}.' + _block(rest)
        elif key.startswith('norm.'):  # tap norms
            if out_format == 'backbone':
                continue
            new = 'backbone.tap_norms.' + key[5:]
        elif key.startswith('decoder.'):
            if out_format == 'backbone':
                continue
            k, rest = key[8:].split('.', 1)
            prefix = f'neck.decoders.{k}.'
            m = re.match(r'blocks\.(\d+)\.(.*)', rest)
            if m:
                new = prefix + f'decoder_blocks.{m[1]}.' + _block(m[2])
            elif rest.startswith('embed.'):
                new = prefix + 'decoder_embed.' + rest[6:]
            elif rest == 'mask_token':
                new = prefix + 'mask_token'
            elif rest == 'pos_embed':
                new = prefix + 'decoder_pos_embed'
            elif rest.startswith('norm.'):
                new = prefix + 'ln1.' + rest[5:]
            elif rest.startswith('pred.'):  # same Sequential indices
                new = prefix + rest
            else:
                raise KeyError(f'unknown decoder parameter {key!r}')
        elif key.startswith('hog_enc.'):
            # The Sobel kernels are constants; only the ViT-L frozen random
            # bias (`--hog_bias`) is state.
            k, rest = key[8:].split('.', 1)
            if rest != 'conv.bias' or out_format == 'backbone':
                continue
            new = f'head.hog.{k}.bias'
        else:
            raise KeyError(f'unknown LocalMIM parameter {key!r}')
        out[new] = value
    return out


def _swin_decoder(key: str, k: str, rest: str) -> str:
    """Official ``ViT_Decoder`` -> :class:`LocalMIMSwinDecoder` name."""
    prefix = f'neck.decoders.{k}.'
    m = re.match(r'blocks\.(\d+)\.(.*)', rest)
    if m:
        try:
            return prefix + f'decoder_blocks.{m[1]}.' + _block(m[2])
        except KeyError:
            raise KeyError(f'unknown decoder parameter {key!r}') from None
    for old, new in (('embed.', 'decoder_embed.'), ('norm.', 'decoder_norm.'),
                     ('pred.', 'decoder_pred.')):
        if rest.startswith(old):
            return prefix + new + rest[len(old):]
    if rest == 'mask_token':
        return prefix + 'mask_token'
    if rest == 'pos_embed':
        return prefix + 'decoder_pos_embed'
    raise KeyError(f'unknown decoder parameter {key!r}')


def convert_localmim_swin(
        state: Dict[str, torch.Tensor],
        out_format: str = 'pretrain') -> 'OrderedDict[str, torch.Tensor]':
    """Map official LocalMIM Swin keys to this plugin's / mmpretrain's.

    The official ``encoder.layers.{i}.downsample`` ends stage ``i`` (it
    merges that stage's output), as mmpretrain's ``stages.{i}.downsample``:
    the stage index is kept. Its ``reduction.weight`` columns and ``norm``
    are permuted from the official row-major 2x2 concatenation to
    ``nn.Unfold``'s order (:func:`merge_order_to_unfold`). The tap norm
    ``encoder.norm.{k}`` (after stage ``k``'s merging) becomes ``norm{k}``.

    Args:
        state (dict): The official ``model`` state dict.
        out_format (str): ``'pretrain'`` (:class:`LocalMIMSwin`,
            :class:`LocalMIMSwinNeck` and the HOG bias if any) or
            ``'backbone'`` (``SwinTransformer`` under ``backbone.``: the
            last tap norm is kept as its final ``norm{last}``, tap norms of
            the other stages, decoders and HOG are dropped).

    Returns:
        OrderedDict: The converted state dict.
    """
    if out_format not in ('pretrain', 'backbone'):
        raise ValueError("`out_format` must be 'pretrain' or 'backbone', "
                         f'got {out_format!r}')
    if not any(k.startswith('encoder.layers.') for k in state):
        raise KeyError('not an official LocalMIM Swin checkpoint (no '
                       f'`encoder.layers.*` key); keys look like '
                       f'{list(state)[:3]}')
    last = max(
        int(k.split('.')[2]) for k in state if k.startswith('encoder.layers.'))
    out = OrderedDict()
    for key, value in state.items():
        if key.startswith('encoder.patch_embed.proj.'):
            new = 'backbone.patch_embed.projection.' + key[25:]
        elif key.startswith('encoder.patch_embed.norm.'):
            new = 'backbone.patch_embed.norm.' + key[25:]
        elif key == 'encoder.absolute_pos_embed':  # official `ape`, off
            new = 'backbone.absolute_pos_embed'
        elif key.startswith('encoder.layers.'):
            i, rest = re.match(r'encoder\.layers\.(\d+)\.(.*)', key).groups()
            block = re.match(r'blocks\.(\d+)\.(.*)', rest)
            if block:
                j, param = block.groups()
                try:
                    param = _block(param, _SWIN_BLOCK)
                except KeyError:
                    raise KeyError(
                        f'unknown Swin block parameter {key!r}') from None
                if param.endswith('relative_position_index'):
                    window = int(round(value.shape[0]**.5))
                    if not torch.equal(value.long(),
                                       swin_relative_position_index(window)):
                        raise ValueError(f'{key!r} is not Swin\'s relative '
                                         'position index')
                new = f'backbone.stages.{i}.blocks.{j}.{param}'
            elif rest in ('downsample.reduction.weight',
                          'downsample.norm.weight', 'downsample.norm.bias'):
                new = f'backbone.stages.{i}.{rest}'
                value = merge_order_to_unfold(value)
            else:
                raise KeyError(f'unknown LocalMIM Swin parameter {key!r}')
        elif key.startswith('encoder.norm.'):  # tap norms
            k, rest = key[13:].split('.', 1)
            if out_format == 'backbone' and int(k) != last:
                continue
            new = f'backbone.norm{k}.{rest}'
        elif key.startswith('decoder.'):
            if out_format == 'backbone':
                continue
            k, rest = key[8:].split('.', 1)
            new = _swin_decoder(key, k, rest)
        elif key.startswith('hog_enc.'):
            # the Sobel kernels are constants; a `--hog_bias` bias is state
            k, rest = key[8:].split('.', 1)
            if rest not in ('conv.weight', 'conv.bias'):
                raise KeyError(f'unknown HOG parameter {key!r}')
            if rest != 'conv.bias' or out_format == 'backbone':
                continue
            new = f'head.hog.{k}.bias'
        else:
            raise KeyError(f'unknown LocalMIM Swin parameter {key!r}')
        out[new] = value
    return out


def detect_arch(state: Dict[str, torch.Tensor]) -> str:
    """``'vit'`` or ``'swin'`` from the official keys.

    Raises:
        KeyError: If neither ``blocks.*`` (ViT) nor ``encoder.layers.*``
            (Swin) keys are present.
    """
    if any(k.startswith('encoder.layers.') for k in state):
        return 'swin'
    if any(k.startswith('blocks.') for k in state):
        return 'vit'
    raise KeyError('not an official LocalMIM checkpoint: expected ViT '
                   '`blocks.*` or Swin `encoder.layers.*` keys; keys look '
                   f'like {list(state)[:3]}')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='official checkpoint')
    parser.add_argument('dst', help='output file')
    parser.add_argument(
        '--out-format',
        default='pretrain',
        choices=['pretrain', 'backbone'],
        help='LocalMIM pre-training layout or a VisionTransformer / '
        'SwinTransformer backbone')
    add_unsafe_full_unpickle(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    ckpt = load_checkpoint_file(args.src, args.unsafe_full_unpickle)
    state = ckpt.get('model', ckpt.get('state_dict', ckpt))
    convert = dict(
        vit=convert_localmim_vit,
        swin=convert_localmim_swin)[detect_arch(state)]
    out = convert(state, args.out_format)
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    torch.save(dict(state_dict=out), args.dst)
    print(f'{args.dst}: {len(out)} tensors ({args.out_format})')


if __name__ == '__main__':
    main()
