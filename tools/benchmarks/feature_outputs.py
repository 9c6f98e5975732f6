# Copyright (c) OpenMMLab. All rights reserved.
"""Score every backbone output of a checkpoint on Fashion-MNIST.

A pre-training algorithm's ``extract_feat`` may return several outputs:
LocalMIM's ViT encoder (`Masked Image Modeling with Local Multi-Scale
Reconstruction <https://arxiv.org/abs/2303.05251>`_) returns its four taps
(after layers ``[1, 3, L-3, L-1]``, each through its own norm). This tool
scores each output with the kNN (k=20) and linear probe of
``tools/benchmarks/fashion_mnist.py`` (mean of the patch tokens, spatial mean
of a feature map), so one can see at which depth a representation is good.
The last output is exactly what the benchmark tool scores. Each row also
gives ``pc1_share``, the variance share of the first principal direction of
the standardised training features: near 1 the features have collapsed onto
one factor, which kNN and the probe cannot separate classes with. Writes
``feature_outputs.json`` and ``feature_outputs.md``.

Example:
    python tools/benchmarks/feature_outputs.py \\
        configs/localmim/localmim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py \\
        work_dirs/quality/localmim/seed0/epoch_2.pth
    # the same layers of an MAE encoder
    python tools/benchmarks/feature_outputs.py \\
        configs/mae/mae_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py \\
        work_dirs/quality/mae/seed0/epoch_2.pth \\
        --cfg-options model.backbone.out_indices=[1,3,9,11]
"""  # noqa: E501
import argparse
from typing import List

import torch
from mmengine.config import DictAction

import mim_plugins  # noqa: F401
from mim_plugins.evaluation import (build_feature_eval_loaders,
                                    build_scoring_model, evaluate_features,
                                    extract_features, pool_tokens,
                                    save_score_table, top_direction_share)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='the pre-training config')
    parser.add_argument(
        'checkpoint',
        help='its checkpoint, or "init" for the initial weights (seeded, '
        'as training sets them)')
    parser.add_argument('--eval-train-samples', type=int, default=10000)
    parser.add_argument('--eval-test-samples', type=int, default=10000)
    parser.add_argument('--probe-epochs', type=int, default=100)
    parser.add_argument(
        '--data-root', default=None, help='Fashion-MNIST IDX folder')
    parser.add_argument('--out', default='work_dirs/feature_outputs')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='config overrides, e.g. model.backbone.out_indices=[1,3,9,11] '
        'to score intermediate layers of a single-output backbone')
    return parser.parse_args()


def pooled_outputs(model, inputs: torch.Tensor) -> List[torch.Tensor]:
    """Every output of ``extract_feat``, pooled to (B, C) each."""
    out = model.extract_feat(inputs)
    if not isinstance(out, (list, tuple)):
        out = [out]
    return [pool_tokens(o) for o in out]


def all_outputs_feature(model, inputs: torch.Tensor) -> torch.Tensor:
    """All pooled outputs concatenated: one forward scores every output."""
    return torch.cat(pooled_outputs(model, inputs), dim=1)


def main() -> None:
    args = parse_args()
    torch.manual_seed(0)
    checkpoint = None if args.checkpoint == 'init' else args.checkpoint
    cfg, model = build_scoring_model(args.config, checkpoint, args.data_root,
                                     args.cfg_options)
    loaders = build_feature_eval_loaders(cfg, args.eval_train_samples,
                                         args.eval_test_samples)
    # the concatenated features are split back by the outputs' widths
    with torch.no_grad():
        batch = model.data_preprocessor(next(iter(loaders['test'])), False)
        widths = [
            o.shape[1] for o in pooled_outputs(model, batch['inputs'][:1])
        ]
    train_feats, train_labels = extract_features(model, loaders['train'],
                                                 all_outputs_feature)
    test_feats, test_labels = extract_features(model, loaders['test'],
                                               all_outputs_feature)
    # the encoder layer behind each output, where the backbone says it
    layers = list(getattr(model.backbone, 'out_indices', [None]))
    if len(layers) != len(widths):
        layers = [None] * len(widths)
    rows = []
    for index, (train, test) in enumerate(
            zip(train_feats.split(widths, 1), test_feats.split(widths, 1))):
        result = evaluate_features((train, train_labels), (test, test_labels),
                                   probe_epochs=args.probe_epochs)
        layer = layers[index]
        rows.append(
            dict(
                output=index,
                layer=None if layer is None else int(layer),
                pc1_share=round(top_direction_share(train), 3),
                **result))
        print(rows[-1], flush=True)
    print(
        save_score_table(
            args.out,
            'feature_outputs',
            rows, ['output', 'layer', 'pc1_share'],
            args.checkpoint,
            args.eval_train_samples,
            args.eval_test_samples,
            args.probe_epochs,
            config=args.config))


if __name__ == '__main__':
    main()
