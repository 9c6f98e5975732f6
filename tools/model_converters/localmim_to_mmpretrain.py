# Copyright (c) OpenMMLab. All rights reserved.
"""Convert an official LocalMIM ViT pre-training checkpoint.

The official code (Haoqing-Wang/LocalMIM, ``ViT/models_mim.py``) saves
``{'model': state_dict, ...}`` with timm names: ``patch_embed.proj``,
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
prefix='backbone.')``. Only the ViT layout is supported (not Swin yet).

Example:
    python tools/model_converters/localmim_to_mmpretrain.py \
        checkpoint-1599.pth localmim_vit-base-p16_in1k.pth
"""
import argparse
import os
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict

import torch

# timm block names -> mmpretrain TransformerEncoderLayer names
_BLOCK = [
    ('norm1.', 'ln1.'),
    ('norm2.', 'ln2.'),
    ('mlp.fc1.', 'ffn.layers.0.0.'),
    ('mlp.fc2.', 'ffn.layers.1.'),
    ('attn.qkv.', 'attn.qkv.'),
    ('attn.proj.', 'attn.proj.'),
]


def _block(rest: str) -> str:
    for old, new in _BLOCK:
        if rest.startswith(old):
            return new + rest[len(old):]
    raise KeyError(f'unknown block parameter {rest!r}')


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


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='official checkpoint')
    parser.add_argument('dst', help='output file')
    parser.add_argument(
        '--out-format',
        default='pretrain',
        choices=['pretrain', 'backbone'],
        help='LocalMIM pre-training layout or VisionTransformer backbone')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    ckpt = torch.load(args.src, map_location='cpu', weights_only=False)
    state = ckpt.get('model', ckpt.get('state_dict', ckpt))
    out = convert_localmim_vit(state, args.out_format)
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    torch.save(dict(state_dict=out), args.dst)
    print(f'{args.dst}: {len(out)} tensors ({args.out_format})')


if __name__ == '__main__':
    main()
