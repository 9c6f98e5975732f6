# Copyright (c) OpenMMLab. All rights reserved.
"""Score every depth of a BIM run on Fashion-MNIST with frozen features.

`BIM <https://arxiv.org/abs/2311.17218>`_ trains, in one run, one encoder per
block boundary (the layers up to the boundary plus that block's norm).  This
tool loads a BIM checkpoint and scores each depth with the same kNN (k=20)
and linear probe as ``tools/benchmarks/fashion_mnist.py`` (mean of the patch
tokens of ``forward_prefix``, which is exactly what
``tools/model_converters/bim_extract_backbones.py`` exports as a
``VisionTransformer`` of that depth). Optionally the same is done for other
checkpoints (e.g. the MAE baseline of the same budget) at full depth, so the
table compares them. Writes ``bim_depths.json`` and ``bim_depths.md``.

Example:
    python tools/benchmarks/bim_depths.py \
        configs/bim/bim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py \
        work_dirs/quality/bim/seed0/epoch_4.pth \
        --compare mae=configs/mae/mae_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py:work_dirs/quality/mae/seed0/epoch_4.pth
"""  # noqa: E501
import argparse
from typing import Dict

import torch

import mim_plugins  # noqa: F401
from mim_plugins.evaluation import (build_feature_eval_loaders,
                                    build_scoring_model, evaluate_features,
                                    extract_features, save_score_table)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='the BIM pre-training config')
    parser.add_argument('checkpoint', help='the BIM checkpoint')
    parser.add_argument(
        '--compare',
        nargs='*',
        default=[],
        metavar='NAME=CONFIG:CKPT',
        help='other pre-trained models scored at full depth')
    parser.add_argument('--eval-train-samples', type=int, default=10000)
    parser.add_argument('--eval-test-samples', type=int, default=10000)
    parser.add_argument('--probe-epochs', type=int, default=100)
    parser.add_argument(
        '--data-root', default=None, help='Fashion-MNIST IDX folder')
    parser.add_argument('--out', default='work_dirs/bim_depths')
    return parser.parse_args()


def depth_feature(num_blocks: int):
    """Feature function: mean patch token of the first ``num_blocks``."""

    def feat_fn(model, inputs):
        out = model.backbone.forward_prefix(inputs, num_blocks)
        if isinstance(out, (list, tuple)):
            out = out[-1]
        return out[:, 1:].mean(dim=1)

    return feat_fn


def score(model, loaders, probe_epochs: int, feat_fn=None) -> Dict:
    train = extract_features(model, loaders['train'], feat_fn)
    test = extract_features(model, loaders['test'], feat_fn)
    return evaluate_features(train, test, probe_epochs=probe_epochs)


def main() -> None:
    args = parse_args()
    torch.manual_seed(0)
    cfg, bim = build_scoring_model(args.config, args.checkpoint,
                                   args.data_root)
    loaders = build_feature_eval_loaders(cfg, args.eval_train_samples,
                                         args.eval_test_samples)
    rows = []
    for k, depth in enumerate(bim.backbone.block_boundaries):
        result = score(bim, loaders, args.probe_epochs, depth_feature(k + 1))
        rows.append(dict(model='bim', depth=depth, **result))
        print(rows[-1], flush=True)
    for spec in args.compare:
        name, _, paths = spec.partition('=')
        config, _, ckpt = paths.partition(':')
        if not (name and config and ckpt):
            raise ValueError(f'--compare takes NAME=CONFIG:CKPT, got {spec}')
        _, model = build_scoring_model(config, ckpt, args.data_root)
        result = score(model, loaders, args.probe_epochs)
        depth = getattr(model.backbone, 'num_layers', None)
        rows.append(dict(model=name, depth=depth, **result))
        print(rows[-1], flush=True)
    print(
        save_score_table(args.out, 'bim_depths', rows, ['model', 'depth'],
                         args.checkpoint, args.eval_train_samples,
                         args.eval_test_samples, args.probe_epochs))


if __name__ == '__main__':
    main()
