# Copyright (c) OpenMMLab. All rights reserved.
"""Peak activations saved for backward in one train step: MAE against BIM
with several block splits (fp32, CPU, parameters excluded).

Only one block's graph is alive at a time in BIM, so this part of peak
training memory falls with the number of blocks. Example (the tables of
docs/experiments/bim.md)::

    python tools/analysis_tools/bim_saved_activations.py \\
        configs/bim/bim_vit-base-p16_8xb512-amp-coslr-400e_in1k.py \\
        configs/mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py
    python tools/analysis_tools/bim_saved_activations.py \\
        configs/bim/bim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py \\
        configs/mae/mae_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py \\
        --batch-size 8
"""
import argparse
import copy

import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper, build_optim_wrapper
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

import mim_plugins  # noqa: F401  (registers the plugin's modules)
from mim_plugins.benchmarks import SavedActivationMeter, image_shape

SPLITS = ([12], [6, 12], [3, 6, 9, 12], [2, 4, 6, 8, 10, 12])


def peak_saved(model_cfg: dict, bim: bool, inputs: torch.Tensor) -> int:
    """Peak saved-activation bytes of one train step (seeded)."""
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        torch.manual_seed(0)
        model = MODELS.build(model_cfg)
        # the learning rate is 0: only the graphs matter, not the update
        optim = build_optim_wrapper(
            model,
            dict(
                constructor='BIMOptimWrapperConstructor',
                optimizer=dict(type='AdamW', lr=0., weight_decay=0.05))
        ) if bim else OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.))
    meter = SavedActivationMeter(model)
    with meter.hooks():
        model.train_step(dict(inputs=inputs, data_samples=None), optim)
    return meter.peak


def activation_table(config: str,
                     mae_config: str,
                     batch_size: int = 1,
                     splits=SPLITS) -> str:
    """Markdown rows: MAE (its decoder and BIM's per-block depth) and BIM
    with each ``block_boundaries`` of ``splits``."""
    cfg = Config.fromfile(config)
    mae = Config.fromfile(mae_config).model
    shape = image_shape(cfg)
    inputs = torch.randn(
        batch_size, *shape, generator=torch.Generator().manual_seed(0))
    depth = cfg.model.neck.decoder_depth
    mae_peak = peak_saved(mae, False, inputs)
    rows = [('MAE', mae.neck.decoder_depth, mae_peak)]
    if depth != mae.neck.decoder_depth:
        light = copy.deepcopy(mae)
        light.neck.decoder_depth = depth
        rows.append(('MAE', depth, peak_saved(light, False, inputs)))
    for bounds in splits:
        model = copy.deepcopy(cfg.model)
        model.backbone.block_boundaries = bounds
        rows.append((f'BIM K={len(bounds)} {bounds}', depth,
                     peak_saved(model, True, inputs)))
    lines = [
        f'batch {batch_size}, input {tuple(shape)}',
        '| model | decoder depth (per block) | MiB | x MAE |',
        '|---|---|---|---|',
    ]
    for name, dec, peak in rows:
        lines.append(f'| {name} | {dec} | {peak / 2**20:.1f} | '
                     f'{peak / mae_peak:.3f} |')
    return '\n'.join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='a BIM config')
    parser.add_argument('mae_config', help='the MAE config of the same size')
    parser.add_argument('--batch-size', type=int, default=1)
    args = parser.parse_args()
    print(activation_table(args.config, args.mae_config, args.batch_size))


if __name__ == '__main__':
    main()
