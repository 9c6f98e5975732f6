# Copyright (c) OpenMMLab. All rights reserved.
"""How often the two Sobel forms of ``HOGTarget`` give different targets.

``HOGTarget(gradient='conv')`` (the official single 3x3 convolution) and
``gradient='difference'`` compute the same filter; their float round-off
differs on flat regions, which the per-cell L2 norm turns into a full
histogram entry for ``'conv'`` and leaves at zero for ``'difference'``.
This tool reads a config's training images (no augmentation: the 2-px
padding of the Fashion-MNIST configs only when ``--pad`` is given),
normalises them with the config's data preprocessor and prints, per cell
size, the share of cells whose targets differ (max difference > 1e-3), the
share of flat cells (all zeros with ``'difference'``) and, for 1-px cells,
where ``'conv'`` puts the flat ones.

Example:
    python tools/analysis_tools/hog_gradient_forms.py \\
        configs/localmim/localmim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py \\
        --pad 2
"""  # noqa: E501
import argparse

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmpretrain.registry import DATASETS

import mim_plugins  # noqa: F401
from mim_plugins.datasets import apply_data_root
from mim_plugins.models.utils import HOGTarget


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='a LocalMIM pre-training config')
    parser.add_argument('--samples', type=int, default=2000)
    parser.add_argument(
        '--pad',
        type=int,
        default=0,
        help='background pixels added on every side')
    parser.add_argument('--cells', type=int, nargs='+', default=[1, 2, 4, 8])
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. data_root=DIR')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    apply_data_root(cfg)
    dataset_cfg = cfg.train_dataloader.dataset.copy()
    dataset_cfg.pipeline = []
    dataset = DATASETS.build(dataset_cfg)
    imgs = np.stack([
        np.asarray(dataset.get_data_info(i)['img'], dtype=np.float32)
        for i in range(args.samples)
    ])
    if imgs.ndim == 3:  # gray
        imgs = imgs[..., None]
    p = args.pad
    imgs = np.pad(imgs, ((0, 0), (p, p), (p, p), (0, 0)))
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2)
    pre = cfg.model.get('data_preprocessor', cfg.get('data_preprocessor'))
    mean = torch.tensor(pre.mean).view(1, -1, 1, 1)
    std = torch.tensor(pre.std).view(1, -1, 1, 1)
    x = (x - mean) / std
    n_bins = cfg.model.head.get('n_bins', 9)
    for cell in args.cells:
        conv = HOGTarget(cell, n_bins, gradient='conv')(x)
        diff = HOGTarget(cell, n_bins, gradient='difference')(x)
        differ = (conv - diff).abs().amax(1) > 1e-3
        flat = diff.abs().amax(1) == 0
        print(f'{cell}-px cells: {differ.float().mean():.1%} differ, '
              f'{flat.float().mean():.1%} flat, '
              f'{(differ & flat).sum() / differ.sum().clamp_min(1):.1%} of '
              'the differing ones flat')
        if cell == 1 and flat.any():
            top = conv.amax(1)[flat]
            bin0 = (conv.argmax(1)[flat] == 0) & (top > 0.99)
            print(f'  flat 1-px cells with a full bin-0 entry from conv: '
                  f'{bin0.float().mean():.1%}')


if __name__ == '__main__':
    main()
