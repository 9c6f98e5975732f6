# Copyright (c) OpenMMLab. All rights reserved.
"""Convert a ViT checkpoint to the ViT layout of mmdet's ViTDet project.

The input is an mmpretrain / plugin checkpoint whose ``backbone.*`` is a
plain ViT (``VisionTransformer``, ``MAEViT``, ``BIMViT``, ``LocalMIMViT``,
``MixMIMViT``), or a backbone extracted by ``extract_backbone.py``.

mmdet's ``projects/ViTDet`` ``ViT`` (``vitdet/vit.py``) loads
``init_cfg=dict(type='Pretrained', checkpoint=OUT)`` itself and reads only
``ckpt['model']`` (the official MAE / timm names), with
``load_state_dict(strict=False)``. The output is ``{'model': ...}`` with

- ``patch_embed.projection`` -> ``patch_embed.proj``,
- ``layers.{i}`` -> ``blocks.{i}`` with ``ln1``/``ln2`` -> ``norm1``/
  ``norm2``, ``ffn.layers.0.0``/``ffn.layers.1`` -> ``mlp.fc1``/``mlp.fc2``
  and ``attn.qkv``/``attn.proj`` unchanged,
- ``pos_embed`` unchanged: it keeps the class-token slot, which ViTDet's
  default ``pretrain_use_cls_token=True`` expects; set ViTDet's
  ``pretrain_img_size`` to the pre-training image size (the printed grid
  times the patch size), the embedding is interpolated to the input grid.

Dropped: ``cls_token`` and the final norm ``ln1`` (ViTDet has neither).
mmpretrain layer scales (``attn.gamma1`` / ``ffn.gamma2``) have no ViTDet
counterpart and are folded into ``attn.proj`` / ``mlp.fc2`` (exact). A
missing qkv bias is written as zeros (ViTDet's default ``qkv_bias=True``).
ViTDet's ``rel_pos_h``/``rel_pos_w`` (``use_rel_pos=True``) are not written:
they are zero-initialised, which is a ViT without relative position.
With global attention (``window_size=0``) ViTDet's ``ViT`` then computes
the features of the same mmpretrain ViT run without class token
(``with_cls_token=False``); ViTDet has no class token, so they differ from
those of the ViT with it.

Example:
    python tools/model_converters/to_vitdet.py \
        work_dirs/bim/epoch_400.pth pretrain/bim_vit-base-p16_vitdet.pth
    # ViTDet config: model.backbone.init_cfg = dict(
    #     type='Pretrained', checkpoint='pretrain/bim_vit-base-p16_vitdet.pth')
"""
import argparse
import os
import os.path as osp
from collections import OrderedDict
from typing import Dict

import torch

from mim_plugins.utils.checkpoint import (add_unsafe_full_unpickle,
                                          load_checkpoint_file, plain_meta,
                                          save_tensors_only, vit_state_dict)

# mmpretrain TransformerEncoderLayer names -> ViTDet Block names
_BLOCK = [
    ('ln1.', 'norm1.'),
    ('ln2.', 'norm2.'),
    ('attn.qkv.', 'attn.qkv.'),
    ('attn.proj.', 'attn.proj.'),
    ('ffn.layers.0.0.', 'mlp.fc1.'),
    ('ffn.layers.1.', 'mlp.fc2.'),
]


def convert_to_vitdet(state: Dict) -> OrderedDict:
    """Map mmpretrain ViT keys to mmdet ViTDet ``ViT`` keys.

    Args:
        state (dict): The output of :func:`vit_state_dict`.

    Returns:
        OrderedDict: The state dict for ViTDet's ``ViT`` (the value of
        ``ckpt['model']``).
    """
    out = OrderedDict()
    out['pos_embed'] = state['pos_embed']
    for name in ('weight', 'bias'):
        key = f'patch_embed.projection.{name}'
        if key in state:
            out[f'patch_embed.proj.{name}'] = state[key]
    dims = state['patch_embed.projection.weight'].shape[0]
    layer_ids = sorted(
        {int(k.split('.')[1])
         for k in state if k.startswith('layers.')})
    for i in layer_ids:
        src, dst = f'layers.{i}.', f'blocks.{i}.'
        for old, new in _BLOCK:
            for name in ('weight', 'bias'):
                if src + old + name in state:
                    out[dst + new + name] = state[src + old + name].clone()
        out.setdefault(dst + 'attn.qkv.bias',
                       state[src + 'attn.qkv.weight'].new_zeros(3 * dims))
        # gamma * (W x + b) == (gamma W) x + gamma b
        for gamma, layer in (('attn.gamma1.weight', 'attn.proj.'),
                             ('ffn.gamma2.weight', 'mlp.fc2.')):
            if src + gamma in state:
                scale = state[src + gamma]
                out[dst + layer + 'weight'] *= scale[:, None]
                if dst + layer + 'bias' in out:
                    out[dst + layer + 'bias'] *= scale
    return out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='mmpretrain / plugin checkpoint')
    parser.add_argument('dst', help='output file')
    parser.add_argument(
        '--prefix', default='backbone.', help='key prefix of the backbone')
    add_unsafe_full_unpickle(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    ckpt = load_checkpoint_file(args.src, args.unsafe_full_unpickle)
    state, skipped = vit_state_dict(ckpt, args.prefix)
    out = convert_to_vitdet(state)
    meta = plain_meta(ckpt.get('meta', {}) if isinstance(ckpt, dict) else {})
    meta['converted_from'] = osp.basename(args.src)
    meta['layout'] = 'mmdet.projects.ViTDet.ViT'
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    save_tensors_only(dict(model=out, meta=meta), args.dst)
    dropped = skipped + [
        k for k in ('cls_token', 'ln1.weight', 'ln1.bias') if k in state
    ]
    if dropped:
        print(f'left out {len(dropped)} keys: {dropped[:8]}' +
              (' ...' if len(dropped) > 8 else ''))
    grid = int((state['pos_embed'].shape[1] - 1)**0.5)
    print(f'{args.dst}: {len(out)} tensors, {grid}x{grid} position grid '
          '(set ViTDet pretrain_img_size = grid x patch size)')


if __name__ == '__main__':
    torch.set_grad_enabled(False)
    main()
