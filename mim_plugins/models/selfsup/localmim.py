# Copyright (c) OpenMMLab. All rights reserved.
from typing import Dict, List

import torch
from mmpretrain.models import BaseSelfSupervisor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ..backbones.localmim_swin import LocalMIMSwin
from ..backbones.localmim_vit import LocalMIMViT
from ..heads.localmim_head import LocalMIMHead
from ..necks.localmim_neck import LocalMIMNeck, LocalMIMSwinNeck


@MODELS.register_module()
class LocalMIM(BaseSelfSupervisor):
    """LocalMIM: masked image modeling with local multi-scale reconstruction.

    Implementation of `Masked Image Modeling with Local Multi-Scale
    Reconstruction <https://arxiv.org/abs/2303.05251>`_.

    An MAE-style masked encoder (:class:`LocalMIMViT`) exposes several
    layers (officially ``[1, 3, L-3, L-1]``), each through its own
    LayerNorm. A light decoder per tap (:class:`LocalMIMNeck`) predicts a
    target at its own scale -- the lower the layer, the finer the scale
    (x4, x2, x1, x1/2 of the patch grid) -- and :class:`LocalMIMHead`
    computes HOG or normalised-pixel targets, the per-scale loss masks and
    the equally weighted losses. Gradients flow end to end (deep
    supervision, no stop-gradient). With :class:`LocalMIMSwin` (one mask
    per batch on 32-px cells) the taps are the stage outputs after patch
    merging, decoded by :class:`LocalMIMSwinNeck` (x4, x2, x1, x1 of the
    mask grid).

    The constructor takes the arguments of
    :class:`mmpretrain.models.BaseSelfSupervisor` and checks, at build time,
    that backbone, neck and head agree: one decoder and one scale per tap,
    the same patch grid and width, the neck's ``out_channels`` equal to the
    head's target dims and an image size divisible by the largest cell.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._check_parts()

    def _check_parts(self) -> None:
        """Raise ``TypeError``/``ValueError`` on an inconsistent config."""
        backbone, neck, head = self.backbone, self.neck, self.head
        # each encoder has its own decoder type
        if isinstance(backbone, LocalMIMViT):
            neck_type, check_pair = LocalMIMNeck, self._check_vit
        elif isinstance(backbone, LocalMIMSwin):
            neck_type, check_pair = LocalMIMSwinNeck, self._check_swin
        else:
            raise TypeError('LocalMIM needs a multi-tap encoder '
                            '(`backbone.type`=\'LocalMIMViT\' or '
                            '\'LocalMIMSwin\'), got '
                            f'{type(backbone).__name__}')
        if not isinstance(neck, neck_type):
            raise TypeError(f'a {type(backbone).__name__} encoder needs '
                            f'`neck.type`=\'{neck_type.__name__}\', got '
                            f'{type(neck).__name__}')
        if not isinstance(head, LocalMIMHead):
            raise TypeError('LocalMIM needs `head.type`=\'LocalMIMHead\', '
                            f'got {type(head).__name__}')
        taps = list(backbone.out_indices)
        if len(taps) != len(neck.decoders):
            raise ValueError(
                f'`backbone.out_indices`={taps} has {len(taps)} taps but the '
                f'neck has {len(neck.decoders)} decoders; give one per tap')
        if len(taps) != len(head.scales):
            raise ValueError(
                f'`backbone.out_indices`={taps} has {len(taps)} taps but '
                f'`head.scales`={head.scales} has {len(head.scales)}')
        if list(neck.out_channels) != head.target_channels:
            raise ValueError(
                f'`neck.out_channels`={list(neck.out_channels)} must equal '
                f'the head\'s target dims {head.target_channels} (target='
                f'{head.target!r}, in_channels={head.in_channels})')
        check_pair()
        largest = max(head.cell_sizes)
        H, W = backbone.patch_resolution
        patch_size = backbone.patch_embed.projection.kernel_size[0]
        img_size = (H * patch_size, W * patch_size)
        for size in img_size:
            if size % largest:
                raise ValueError(
                    f'`backbone.img_size`={img_size} is not divisible by the '
                    f'largest cell ({largest} px = head.patch_size / '
                    f'{min(head.scales)})')

    def _check_vit(self) -> None:
        """The ViT encoder against its :class:`LocalMIMNeck` and the head."""
        backbone, neck, head = self.backbone, self.neck, self.head
        if list(neck.scales) != list(head.scales):
            raise ValueError(f'`neck.scales`={neck.scales} differs from '
                             f'`head.scales`={head.scales}')
        if neck.num_patches != backbone.num_patches:
            raise ValueError(f'`neck.num_patches`={neck.num_patches} differs '
                             f'from the backbone\'s {backbone.num_patches} '
                             'patches')
        if neck.embed_dim != backbone.embed_dims:
            raise ValueError(f'`neck.embed_dim`={neck.embed_dim} differs '
                             f'from the backbone width {backbone.embed_dims}')
        patch_size = backbone.patch_embed.projection.kernel_size[0]
        if head.patch_size != patch_size:
            raise ValueError(f'`head.patch_size`={head.patch_size} differs '
                             f'from the backbone\'s {patch_size}')

    def _check_swin(self) -> None:
        """The Swin encoder against its :class:`LocalMIMSwinNeck`."""
        backbone, neck, head = self.backbone, self.neck, self.head
        # Losses are masked on the mask grid: the head's "patch" is the cell.
        if head.patch_size != backbone.mask_patch_size:
            raise ValueError(
                f'`head.patch_size`={head.patch_size} must equal the Swin '
                f'`mask_patch_size`={backbone.mask_patch_size}')
        widths = [backbone.num_features[i] for i in backbone.out_indices]
        if list(neck.in_channels) != widths:
            raise ValueError(f'`neck.in_channels`={list(neck.in_channels)} '
                             f'must be the tap widths {widths}')
        grids = [int(backbone.mask_grid[0] * s) for s in head.scales]
        if list(neck.grids) != grids:
            raise ValueError(f'`neck.grids`={list(neck.grids)} must be the '
                             f'target grids {grids} (mask grid '
                             f'{backbone.mask_grid[0]} x `head.scales`)')

    def extract_feat(self, inputs: torch.Tensor):
        """Un-masked features of the tapped layers (last tap last)."""
        return self.backbone(inputs, mask=None)

    def loss(self, inputs: torch.Tensor, data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """The forward function in training.

        Args:
            inputs (torch.Tensor): The input images.
            data_samples (List[DataSample]): All elements required
                during the forward function.

        Returns:
            Dict[str, torch.Tensor]: ``loss_scale{k}`` for every scale,
            finest first; their sum is the total loss.
        """
        latents, mask, ids_restore = self.backbone(inputs)
        if ids_restore is None:  # batch-shared mask (Swin): decode by mask
            preds = self.neck(latents, mask)
        else:
            preds = self.neck(latents, ids_restore)
        return self.head.loss(preds, inputs, mask)
