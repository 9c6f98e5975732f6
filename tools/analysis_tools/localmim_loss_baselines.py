# Copyright (c) OpenMMLab. All rights reserved.
"""What LocalMIM's per-scale losses are worth: the losses of predictors
that know nothing about the image.

`Masked Image Modeling with Local Multi-Scale Reconstruction
<https://arxiv.org/abs/2303.05251>`_ logs one loss per scale
(``loss_scale{k}``). Whether a value means anything depends on the data: a
decoder that outputs the same vector everywhere already gets far below the
loss of predicting zeros. This tool draws images through the config's own
training pipeline, masks them with the config's own backbone and scores,
with the head's own masked loss, three predictors that ignore the image:

- ``zero``: all-zero targets,
- ``dataset_mean``: one vector, the mean target over all cells and images,
- ``cell_mean``: per cell position, the mean target over the images,

and the share of cells whose target is all zeros (flat HOG cells).

With ``--scalars`` (a run's ``vis_data/scalars.json``) the first and last
logged losses are shown beside them: a scale whose loss stays at
``cell_mean`` has learned nothing about the masked content. Writes
``loss_baselines.json`` and ``loss_baselines.md`` to ``--out``.

Example:
    python tools/analysis_tools/localmim_loss_baselines.py \\
        configs/localmim/localmim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py \\
        --scalars work_dirs/localmim/20261125_035450/vis_data/scalars.json
"""  # noqa: E501
import argparse
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.config import Config, DictAction

import mim_plugins  # noqa: F401

PREDICTORS = ('zero', 'dataset_mean', 'cell_mean')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='a LocalMIM pre-training config')
    parser.add_argument(
        '--samples',
        type=int,
        default=2000,
        help='training images drawn (the first N of the dataset)')
    parser.add_argument('--batch-size', type=int, default=250)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--scalars',
        default=None,
        help='a run\'s vis_data/scalars.json: show its first and last '
        'logged loss_scale{k}')
    parser.add_argument(
        '--data-root',
        default=None,
        help='dataset folder replacing the training data_prefix')
    parser.add_argument('--out', default='work_dirs/loss_baselines')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


def collect(model, dataset, samples: int, batch_size: int) -> Dict:
    """Targets and loss masks of ``samples`` images, scale by scale."""
    from mmengine.dataset import default_collate
    head = model.head
    targets: List[List[torch.Tensor]] = [[] for _ in head.scales]
    masks: List[List[torch.Tensor]] = [[] for _ in head.scales]
    for start in range(0, samples, batch_size):
        batch = default_collate([
            dataset[i] for i in range(start, min(samples, start + batch_size))
        ])
        with torch.no_grad():
            inputs = model.data_preprocessor(batch, True)['inputs']
            # the backbone's own masking (per image for ViT, batch-shared
            # for Swin); only the mask is kept
            _, mask, _ = model.backbone(inputs)
            # as LocalMIMHead.loss: the mask lies on the grid of
            # `patch_size` cells (the mask cells for Swin)
            H, W = inputs.shape[-2:]
            grid = (H // head.patch_size, W // head.patch_size)
            for k, (t, m) in enumerate(
                    zip(
                        head.construct_targets(inputs),
                        head.construct_masks(mask, grid))):
                targets[k].append(t)
                masks[k].append(m)
    return dict(
        targets=[torch.cat(t) for t in targets],
        masks=[torch.cat(m) for m in masks])


def baseline_losses(head, targets: Sequence[torch.Tensor],
                    masks: Sequence[torch.Tensor]) -> List[Dict[str, float]]:
    """The head's loss of every image-blind predictor, per scale.

    Args:
        head (LocalMIMHead): Gives the loss and the scale weights.
        targets (Sequence[Tensor]): Per scale (N, cells, C).
        masks (Sequence[Tensor]): Per scale (N, cells) loss weights.

    Returns:
        list[dict]: Per scale ``{predictor: loss}``, weighted as
        ``loss_scale{k}`` is logged, and ``zero_cells``, the share of
        cells whose target is all zeros.
    """
    rows = []
    for k, (y, m) in enumerate(zip(targets, masks)):
        preds = dict(
            zero=torch.zeros_like(y),
            dataset_mean=y.mean(dim=(0, 1), keepdim=True).expand_as(y),
            cell_mean=y.mean(dim=0, keepdim=True).expand_as(y))
        # cells with an all-zero target (flat HOG cells, constant pixels)
        row = dict(zero_cells=float((y.abs().sum(-1) == 0).float().mean()))
        for name, pred in preds.items():
            loss = head.loss_module(pred.float(), y.float(), m)
            row[name] = head.loss_weights[k] * float(loss)
        rows.append(row)
    return rows


def logged_losses(path: str, num_scales: int) -> Dict[str, List[float]]:
    """First and last logged ``loss_scale{k}`` of a scalars.json."""
    with open(path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    keys = [f'loss_scale{k}' for k in range(num_scales)]
    records = [r for r in records if all(key in r for key in keys)]
    if not records:
        raise ValueError(f'{path} logs no {keys}')
    return dict(
        first=[records[0][key] for key in keys],
        last=[records[-1][key] for key in keys],
        first_iter=records[0].get('iter'),
        last_iter=records[-1].get('iter'))


def markdown(head, rows: List[Dict], logged: Optional[Dict]) -> str:
    titles = ['scale', 'cell (px)', 'zero cells'] + list(PREDICTORS)
    if logged:
        titles += [
            f"logged, iter {logged['first_iter']}",
            f"logged, iter {logged['last_iter']}"
        ]
    lines = ['| ' + ' | '.join(titles) + ' |', '|' + ' --- |' * len(titles)]
    for k, row in enumerate(rows):
        cells = [
            f'{head.scales[k]:g}',
            str(head.cell_sizes[k]), f"{row['zero_cells']:.2f}"
        ]
        cells += [f'{row[name]:.4f}' for name in PREDICTORS]
        if logged:
            cells += [f"{logged['first'][k]:.4f}", f"{logged['last'][k]:.4f}"]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def main() -> None:
    args = parse_args()
    from mmengine.registry import init_default_scope
    from mmengine.runner import set_random_seed
    from mmpretrain.registry import DATASETS, MODELS
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    set_random_seed(args.seed)
    if args.data_root:
        cfg.train_dataloader.dataset.data_prefix = args.data_root
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    if not 1 <= args.samples <= len(dataset):
        raise ValueError(f'--samples must be in [1, {len(dataset)}], got '
                         f'{args.samples}')
    model_cfg = cfg.model.copy()
    model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    model = MODELS.build(model_cfg).eval()
    if not hasattr(model.head, 'construct_targets'):
        raise ValueError(f'{args.config}: model.head must be a LocalMIMHead, '
                         f"got {cfg.model.head['type']}")
    data = collect(model, dataset, args.samples, args.batch_size)
    rows = baseline_losses(model.head, data['targets'], data['masks'])
    logged = logged_losses(args.scalars, len(rows)) if args.scalars else None
    table = markdown(model.head, rows, logged)
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, 'loss_baselines.json'), 'w') as f:
        json.dump(
            dict(
                config=args.config,
                samples=args.samples,
                seed=args.seed,
                scales=list(model.head.scales),
                baselines=rows,
                logged=logged),
            f,
            indent=2)
    with open(osp.join(args.out, 'loss_baselines.md'), 'w') as f:
        f.write(table)
    print(table)


if __name__ == '__main__':
    main()
