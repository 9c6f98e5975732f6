# Copyright (c) OpenMMLab. All rights reserved.
"""Train-step FLOPs of PR-MIM against MAE of the same size, for several
throw ratios, with and without the progressive thrown path.

One forward and backward of ``model.loss`` per row, counted with
``mim_plugins.benchmarks.flop_counter_mode`` (CPU attention
included); every row uses the same weights and the same random mask.
"thrown path share" is (progressive - none) / progressive. Example (the
tables of docs/experiments/prmim.md)::

    python tools/analysis_tools/prmim_flops.py \\
        configs/prmim/prmim_vit-base-p16_8xb512-amp-coslr-400e_in1k.py \\
        configs/mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py
    python tools/analysis_tools/prmim_flops.py \\
        configs/prmim/prmim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py \\
        configs/mae/mae_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py \\
        --batch-size 2
"""
import argparse
import copy

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

import mim_plugins  # noqa: F401  (registers the plugin's modules)
from mim_plugins.benchmarks import image_shape, train_step_flops


def build(model_cfg: dict, state_dict: dict) -> torch.nn.Module:
    model_cfg = copy.deepcopy(model_cfg)
    model_cfg.pop('init_cfg', None)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(model_cfg)
    if state_dict is not None:
        # PR-MIM's neck and head add no parameters: MAE loads them as is
        model.load_state_dict(state_dict)
    return model


def flop_table(config: str,
               mae_config: str,
               batch_size: int = 1,
               throw_ratios=(0.25, 0.5, 0.65)) -> str:
    cfg = Config.fromfile(config)
    shape = image_shape(cfg)
    inputs = torch.randn(
        batch_size, *shape, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    base = build(cfg.model, None)
    base.backbone.init_weights()  # sin-cos position embeddings
    base.neck.init_weights()
    weights = base.state_dict()
    mae, _ = train_step_flops(
        build(Config.fromfile(mae_config).model, weights), inputs)
    lines = [
        f'batch {batch_size}, input {tuple(shape)}: MAE train step = '
        f'{mae / 1e9:.2f} GFLOPs',
        '| throw_ratio | thrown path | GFLOPs | x MAE | thrown path share |',
        '|---|---|---|---|---|',
    ]
    for throw in throw_ratios:
        flops = {}
        for path in ('progressive', 'none'):
            model_cfg = copy.deepcopy(cfg.model)
            model_cfg.neck.update(throw_ratio=throw, thrown_path=path)
            flops[path], _ = train_step_flops(
                build(model_cfg, weights), inputs)
        share = (flops['progressive'] - flops['none']) / flops['progressive']
        for path, note in (('progressive', f'{share:.2%}'), ('none', '-')):
            lines.append(f'| {throw} | {path} | {flops[path] / 1e9:.2f} | '
                         f'{flops[path] / mae:.3f} | {note} |')
    return '\n'.join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='a PR-MIM config')
    parser.add_argument('mae_config', help='the MAE config of the same size')
    parser.add_argument('--batch-size', type=int, default=1)
    args = parser.parse_args()
    print(flop_table(args.config, args.mae_config, args.batch_size))


if __name__ == '__main__':
    main()
