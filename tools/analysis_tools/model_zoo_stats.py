# Copyright (c) OpenMMLab. All rights reserved.
"""Parameters and FLOPs of configs, as listed in the metafiles.

``Parameters`` is the size of the whole model a config builds; ``FLOPs`` is
the inference cost of its plain encoder (mmpretrain's ``VisionTransformer``,
``MixMIMTransformer`` or ``SwinTransformer`` with the config's arch, image
size and channels) on one image, counted with mmengine's
``get_model_complexity_info`` — with mmpretrain's Python attention so that
the attention products are counted too. This reproduces the numbers of
mmpretrain's own metafiles (MAE ViT-B 17581972224 FLOPs).

Example:
    python tools/analysis_tools/model_zoo_stats.py configs/bim/*.py
"""
import argparse
import json
from typing import Dict

import torch
from mmengine.analysis import get_model_complexity_info
from mmengine.config import Config

import mim_plugins  # noqa: F401

# The fused attention kernel is invisible to the tracer: count mmpretrain's
# Python implementation instead (set before any model is built).
import mmpretrain.models.utils.attention as _attention  # noqa: E402,I001

_attention.scaled_dot_product_attention = (
    _attention.scaled_dot_product_attention_pyimpl)


def config_stats(config: str) -> Dict[str, int]:
    """``{'params': ..., 'flops': ...}`` of one config."""
    from mmengine.registry import init_default_scope
    from mmpretrain.models import (MixMIMTransformer, SwinTransformer,
                                   VisionTransformer)
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    model = MODELS.build(cfg.model)
    params = sum(p.numel() for p in model.parameters())
    bb = cfg.model.backbone
    img = bb.get('img_size', 224)
    patch_embed = getattr(model.backbone, 'patch_embed', None)
    in_chans = (patch_embed.projection.weight.shape[1] if patch_embed else 3)
    if 'MixMIM' in bb['type'] and 'ViT' not in bb['type']:
        encoder = MixMIMTransformer(arch=bb.get('arch', 'B'), img_size=img)
    elif 'Swin' in bb['type']:
        # the windows of every stage as built (they may differ per stage,
        # e.g. 14 and 7 for the last 7x7 map of window-14 models)
        windows = [
            stage.blocks[0].attn.window_size for stage in model.backbone.stages
        ]
        encoder = SwinTransformer(
            arch=bb.get('arch', 'base'),
            img_size=img,
            window_size=windows[0],
            stage_cfgs=[dict(window_size=w) for w in windows],
            pad_small_map=bb.get('pad_small_map', False))
    else:
        encoder = VisionTransformer(
            arch=bb.get('arch', 'b'),
            img_size=img,
            patch_size=bb.get('patch_size', 16),
            in_channels=in_chans)
    encoder.eval()
    with torch.no_grad():
        info = get_model_complexity_info(
            encoder,
            inputs=(torch.zeros(1, in_chans, img, img), ),
            show_table=False,
            show_arch=False)
    return dict(params=int(params), flops=int(info['flops']))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='+')
    args = parser.parse_args()
    out = {config: config_stats(config) for config in args.configs}
    print(json.dumps(out, indent=1))


if __name__ == '__main__':
    main()
