# Copyright (c) OpenMMLab. All rights reserved.
"""Convert a ViT checkpoint to mmseg's ``MAE`` backbone layout.

The input is an mmpretrain / plugin checkpoint whose ``backbone.*`` is a
plain ViT (``VisionTransformer``, ``MAEViT``, ``BIMViT``, ``LocalMIMViT``,
``MixMIMViT``): a pre-training or fine-tuning checkpoint, or a backbone
extracted by ``extract_backbone.py`` (with or without the prefix).

mmseg's ``MAE`` (``mmseg.models.backbones.MAE``, BEiT-derived) loads
``init_cfg=dict(type='Pretrained', checkpoint=OUT)`` itself: it ignores any
``prefix`` and calls ``load_state_dict(strict=False)``, so an mmpretrain
checkpoint with ``backbone.*`` keys would silently load nothing. The output
has bare keys under ``state_dict``:

- ``cls_token``, ``pos_embed``, ``patch_embed.projection.*``,
  ``layers.{i}.{ln1,attn.qkv,attn.proj,ln2,ffn.layers.0.0,ffn.layers.1}.*``
  keep their names (mmseg and mmpretrain agree on them);
- the layer scales ``layers.{i}.gamma_{1,2}`` come from mmpretrain's
  ``attn.gamma1.weight`` / ``ffn.gamma2.weight``, or are written as ones for
  a ViT without layer scale, so the mmseg model computes what the ViT
  computes whatever its ``init_values``;
- a missing ``attn.qkv.bias`` is written as zeros (mmseg's qkv has a bias);
- the final norm ``ln1.*`` is kept; it is used by ``final_norm=True`` and
  reported as unexpected (and ignored) by mmseg's default
  ``final_norm=False``. ``--drop-final-norm`` leaves it out.

Not written: ``layers.{i}.attn.relative_position_bias_table`` (mmseg's MAE
initialises it with zeros, which is exactly a ViT without relative position
bias; writing it would make mmseg resize it through SciPy's removed
``interp2d`` when the fine-tune grid differs) and the
``relative_position_index`` buffers (computed by the model). The absolute
``pos_embed`` is resized by mmseg at load time when the image size differs.
Keep ``norm_cfg=dict(type='LN', eps=1e-6)`` (mmseg's ``upernet_mae`` base
does; the class default eps is 1e-5): then the mmseg model computes the
ViT's features exactly (tested).

Example:
    python tools/model_converters/to_mmseg_mae.py \
        work_dirs/bim/epoch_400.pth pretrain/bim_vit-base-p16_mmseg.pth
    # mmseg config: model.backbone = dict(type='MAE', ...,
    #     init_cfg=dict(type='Pretrained',
    #                   checkpoint='pretrain/bim_vit-base-p16_mmseg.pth'))
"""
import argparse
import os
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict

import torch

from mim_plugins.utils.checkpoint import (add_unsafe_full_unpickle,
                                          load_checkpoint_file, num_layers,
                                          plain_meta, save_tensors_only,
                                          vit_state_dict)


def convert_to_mmseg_mae(state: Dict,
                         keep_final_norm: bool = True) -> OrderedDict:
    """Map mmpretrain ViT keys to mmseg ``MAE`` keys.

    Args:
        state (dict): The output of :func:`vit_state_dict`.
        keep_final_norm (bool): Keep the final norm ``ln1.*``.
            Defaults to True.

    Returns:
        OrderedDict: The state dict for ``mmseg.models.backbones.MAE``.
    """
    out = OrderedDict()
    for key, value in state.items():
        if key.startswith('ln1.') and not keep_final_norm:
            continue
        key = re.sub(r'\.attn\.gamma1\.weight$', '.gamma_1', key)
        key = re.sub(r'\.ffn\.gamma2\.weight$', '.gamma_2', key)
        out[key] = value
    dims = state['patch_embed.projection.weight'].shape[0]
    for i in range(num_layers(state)):
        ref = state[f'layers.{i}.attn.qkv.weight']
        for gamma in ('gamma_1', 'gamma_2'):
            # layer scale 1 == no layer scale
            out.setdefault(f'layers.{i}.{gamma}', ref.new_ones(dims))
        out.setdefault(f'layers.{i}.attn.qkv.bias', ref.new_zeros(3 * dims))
    return out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='mmpretrain / plugin checkpoint')
    parser.add_argument('dst', help='output file')
    parser.add_argument(
        '--prefix', default='backbone.', help='key prefix of the backbone')
    parser.add_argument(
        '--drop-final-norm',
        action='store_true',
        help='leave out the final norm (ln1.*)')
    add_unsafe_full_unpickle(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    ckpt = load_checkpoint_file(args.src, args.unsafe_full_unpickle)
    state, skipped = vit_state_dict(ckpt, args.prefix)
    out = convert_to_mmseg_mae(state, not args.drop_final_norm)
    meta = plain_meta(ckpt.get('meta', {}) if isinstance(ckpt, dict) else {})
    meta['converted_from'] = osp.basename(args.src)
    meta['layout'] = 'mmseg.MAE'
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    save_tensors_only(dict(state_dict=out, meta=meta), args.dst)
    if skipped:
        print(f'left out {len(skipped)} non-ViT keys: {skipped[:8]}' +
              (' ...' if len(skipped) > 8 else ''))
    grid = int((state['pos_embed'].shape[1] - 1)**0.5)
    print(f'{args.dst}: {len(out)} tensors, {num_layers(state)} layers, '
          f'{grid}x{grid} position grid')


if __name__ == '__main__':
    torch.set_grad_enabled(False)
    main()
