# Copyright (c) OpenMMLab. All rights reserved.
"""Baselines that need no training, scored like the pre-trained encoders.

A pre-trained encoder is only worth its budget if its frozen features beat
what is there without any training. Next to each network at random
initialisation (the first point of every budgeted run) the equal-budget
benchmark and the demo score, with the same weighted kNN and linear probe on
the same images:

- ``pixels``: the normalised image itself, flattened;
- ``hog_mean``: the HOG of LocalMIM's target (`Masked Image Modeling with
  Local Multi-Scale Reconstruction <https://arxiv.org/abs/2303.05251>`_),
  at each of its scales, cells averaged as the evaluation averages the
  encoder's patch tokens, concatenated over the scales;
- ``hog_patches``: the same HOG at the scale whose cell is one patch (the
  token grid), every cell kept.

The HOG modules are those of LocalMIM's head
(:class:`~mim_plugins.models.heads.LocalMIMHead`), built from its config, so
the baseline is its target exactly.
"""
from typing import Callable, Dict, List

import torch
from torch import nn

from mim_plugins.evaluation.feature_eval import (evaluate_features,
                                                 extract_features)

BASELINES = dict(
    pixels='raw pixels',
    hog_mean='HOG, cells averaged per scale',
    hog_patches='HOG, one cell per patch')


class FixedFeatures(nn.Module):
    """A feature extractor without parameters to learn, with the data
    pre-processor of a config, so :func:`extract_features` reads it as it
    reads an algorithm.

    Args:
        data_preprocessor (nn.Module): The config's pre-processor.
        fn (Callable): Maps pre-processed images (B, C, H, W) to (B, D).
    """

    def __init__(self, data_preprocessor: nn.Module, fn: Callable) -> None:
        super().__init__()
        self.data_preprocessor = data_preprocessor
        self.fn = fn

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.fn(inputs)


def pixel_features(inputs: torch.Tensor) -> torch.Tensor:
    """The normalised images, flattened: (B, C * H * W)."""
    return inputs.flatten(1).float()


def hog_mean_features(hogs: List[nn.Module],
                      inputs: torch.Tensor) -> torch.Tensor:
    """Each HOG scale's cells averaged, concatenated over the scales.

    Args:
        hogs (list[nn.Module]): :class:`HOGTarget` modules, one per scale.
        inputs (Tensor): Normalised images (B, C, H, W).

    Returns:
        Tensor: (B, sum of C * n_bins over the scales).
    """
    return torch.cat([hog(inputs).mean(dim=(2, 3)) for hog in hogs], dim=1)


def hog_cell_features(hog: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Every cell of one HOG scale, flattened: (B, C * n_bins * cells)."""
    return hog(inputs).flatten(1)


def localmim_hogs(localmim_cfg) -> Dict:
    """The HOG modules of a LocalMIM config's head and its patch size.

    Returns:
        dict: ``hogs`` (one :class:`HOGTarget` per scale) and ``patch_cell``
        (the one whose cell is a patch, or None).
    """
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope(localmim_cfg.get('default_scope', 'mmpretrain'))
    head_cfg = localmim_cfg.model.head
    if head_cfg.get('target', 'hog') != 'hog':
        raise ValueError('the HOG baselines need a LocalMIM config with '
                         f"head.target='hog', got {head_cfg.get('target')!r}")
    head = MODELS.build(head_cfg)
    hogs = list(head.hog)
    patch = [
        h for h, c in zip(hogs, head.cell_sizes) if c == head_cfg.patch_size
    ]
    return dict(hogs=hogs, patch_cell=patch[0] if patch else None)


def baseline_extractors(data_preprocessor: nn.Module,
                        localmim_cfg=None) -> Dict[str, nn.Module]:
    """The baselines' feature extractors, by name (:data:`BASELINES`); the
    HOG ones only when a LocalMIM config is given."""
    extractors = dict(pixels=FixedFeatures(data_preprocessor, pixel_features))
    if localmim_cfg is not None:
        spec = localmim_hogs(localmim_cfg)
        hogs = nn.ModuleList(spec['hogs'])
        extractors['hog_mean'] = FixedFeatures(
            data_preprocessor, lambda x: hog_mean_features(hogs, x))
        if spec['patch_cell'] is not None:
            cell = spec['patch_cell']
            extractors['hog_patches'] = FixedFeatures(
                data_preprocessor, lambda x: hog_cell_features(cell, x))
    return extractors


def score_baselines(cfg,
                    loaders: Dict,
                    localmim_cfg=None,
                    knn_k: int = 20,
                    probe_epochs: int = 100) -> Dict[str, Dict[str, float]]:
    """Score every baseline on the images of an evaluation.

    Args:
        cfg (Config): The pre-training config whose ``data_preprocessor``
            normalises the images (the encoders see the same inputs).
        loaders (dict): :func:`build_feature_eval_loaders` output: the bank
            / probe training images and the scored images.
        localmim_cfg (Config, optional): A LocalMIM config with a HOG target
            (its head's HOG modules are used); None scores pixels only.
        knn_k (int): kNN neighbours. Defaults to 20.
        probe_epochs (int): Linear-probe epochs (0 skips). Defaults to 100.

    Returns:
        dict: Per baseline name, ``knn_top1``, ``linear_top1`` (%) and
        ``dims``, the feature dimension.
    """
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    preprocessor = MODELS.build(cfg.data_preprocessor)
    scores = {}
    for name, extractor in baseline_extractors(preprocessor,
                                               localmim_cfg).items():
        feat_fn = (lambda model, x: model(x))  # noqa: E731
        train = extract_features(extractor, loaders['train'], feat_fn)
        test = extract_features(extractor, loaders['test'], feat_fn)
        scores[name] = dict(
            evaluate_features(
                train, test, knn_k=knn_k, probe_epochs=probe_epochs),
            dims=train[0].shape[1])
    return scores
