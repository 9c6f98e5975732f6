# Copyright (c) OpenMMLab. All rights reserved.
"""Export one ViT backbone per BIM block boundary from a BIM checkpoint.

`BIM: Block-Wise Self-Supervised Learning with Masked Image Modeling
<https://arxiv.org/abs/2311.17218>`_ trains, in one run, encoders of every
depth in ``block_boundaries``: the prefix up to block k plus block k's norm is
a complete encoder. For each boundary d this writes
``OUT_DIR/bim_backbone_depth{d}.pth``: ``{'state_dict': {'backbone.*': ...}}``
holding only tensors (loadable with ``torch.load(weights_only=True)``), laid
out for mmpretrain's ``VisionTransformer`` with ``num_layers=d`` and
``final_norm=True`` (block k's norm becomes ``ln1``). Fine-tune configs load
it with ``init_cfg=dict(type='Pretrained', prefix='backbone.', ...)``.

Example:
    python tools/model_converters/bim_extract_backbones.py \
        work_dirs/bim/epoch_10.pth work_dirs/bim/backbones
"""
import argparse
import os
import os.path as osp
import re
from typing import Dict, List, Optional

import torch

from mim_plugins.utils.checkpoint import (add_unsafe_full_unpickle,
                                          load_checkpoint_file)

_LAYER = re.compile(r'^layers\.(\d+)\.(.*)$')
_BLOCK_NORM = re.compile(r'^block_norms\.(\d+)\.(.*)$')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('checkpoint', help='BIM checkpoint (runner output)')
    parser.add_argument('out_dir', help='folder for the exported backbones')
    parser.add_argument(
        '--block-boundaries',
        type=int,
        nargs='+',
        help='the model.backbone.block_boundaries of the run; read from the '
        'config stored in the checkpoint when omitted')
    add_unsafe_full_unpickle(parser)
    return parser.parse_args()


def boundaries_from_meta(checkpoint: dict) -> Optional[List[int]]:
    """Read ``model.backbone.block_boundaries`` from the stored config."""
    cfg_text = checkpoint.get('meta', {}).get('cfg')
    if not cfg_text:
        return None
    from mmengine.config import Config
    cfg = Config.fromstring(cfg_text, file_format='.py')
    return list(cfg.model.backbone.block_boundaries)


def extract_backbones(
        state_dict: Dict[str, torch.Tensor],
        block_boundaries: List[int]) -> Dict[int, Dict[str, torch.Tensor]]:
    """Split a BIM state dict into one ``VisionTransformer`` per boundary.

    Args:
        state_dict (dict): The BIM model's state dict (``backbone.*``,
            ``neck.*``, ``head.*`` keys).
        block_boundaries (list[int]): The encoder's block boundaries.

    Returns:
        dict[int, dict]: Depth -> state dict with ``backbone.`` keys.
    """
    backbone = {
        k[len('backbone.'):]: v.detach().cpu().clone()
        for k, v in state_dict.items() if k.startswith('backbone.')
    }
    if not backbone:
        raise ValueError('No `backbone.` keys: not a BIM checkpoint.')
    num_norms = len({
        m.group(1)
        for m in map(_BLOCK_NORM.match, backbone) if m is not None
    })
    if num_norms != len(block_boundaries) - 1:
        raise ValueError(
            f'block_boundaries {block_boundaries} give '
            f'{len(block_boundaries)} blocks but the checkpoint has '
            f'{num_norms + 1} (block_norms.* + ln1).')
    outputs = {}
    for block, depth in enumerate(block_boundaries):
        last = block == len(block_boundaries) - 1
        out = {}
        for key, value in backbone.items():
            layer = _LAYER.match(key)
            norm = _BLOCK_NORM.match(key)
            if layer is not None:
                if int(layer.group(1)) < depth:
                    out[key] = value
            elif norm is not None:
                if int(norm.group(1)) == block:
                    out[f'ln1.{norm.group(2)}'] = value
            elif key.startswith('ln1.'):
                if last:
                    out[key] = value
            else:  # patch_embed, cls_token, pos_embed
                out[key] = value
        outputs[depth] = {f'backbone.{k}': v for k, v in out.items()}
    return outputs


def main() -> None:
    args = parse_args()
    checkpoint = load_checkpoint_file(args.checkpoint,
                                      args.unsafe_full_unpickle)
    state_dict = checkpoint.get('state_dict', checkpoint)
    boundaries = args.block_boundaries or boundaries_from_meta(checkpoint)
    if not boundaries:
        raise ValueError('The checkpoint stores no config: pass '
                         '--block-boundaries (e.g. 3 6 9 12).')
    os.makedirs(args.out_dir, exist_ok=True)
    for depth, backbone in extract_backbones(state_dict, boundaries).items():
        path = osp.join(args.out_dir, f'bim_backbone_depth{depth}.pth')
        torch.save({'state_dict': backbone}, path)
        print(f'depth {depth}: {len(backbone)} tensors -> {path}')


if __name__ == '__main__':
    main()
