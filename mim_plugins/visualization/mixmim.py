# Copyright (c) OpenMMLab. All rights reserved.
"""Reconstruction picture of MixMIM: the mixed input and both unmixings."""
from collections import OrderedDict
from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

from .reconstruction import register_reconstructor


@register_reconstructor('MixMIM')
def mixmim_panels(model: nn.Module,
                  inputs: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Panels of a MixMIM model (mmpretrain's ``MixMIM`` or ``MixMIMPlus``).

    Implementation of `MixMAE: Mixed and Masked Autoencoder for Efficient
    Pretraining of Hierarchical Vision Transformers
    <https://arxiv.org/abs/2205.13137>`_ pictures.

    Image ``i`` is mixed with image ``B-1-i``, so ``inputs`` needs an even
    batch. Every cell of the unmixed reconstruction is predicted from a
    branch where that cell of the image was hidden.

    Returns:
        dict[str, Tensor]: ``original``, ``mixed`` (the encoder's input:
        image ``i`` where the mask is 0, its partner elsewhere),
        ``reconstruction`` (unmixed prediction, de-normalized per patch with
        the true patch statistics when ``norm_pix``) and ``mask`` (B, L),
        1 where image ``i`` is replaced by its partner (not drawn).
    """
    if inputs.shape[0] % 2:
        raise NotImplementedError(
            'MixMIM pictures need an even number of images '
            f'(batch-flip pairs), got {inputs.shape[0]}')
    latent, mask = model.backbone(inputs)[:2]
    x_rec = model.neck(latent, mask)
    if isinstance(x_rec, tuple):  # PR-MIM decoder: (x_rec, kept, thrown)
        x_rec = x_rec[0]
    head = model.head
    # MixMIMPlusPretrainHead.unmix, written out for mmpretrain's head
    half = x_rec.shape[0] // 2
    pred = x_rec[:half] * mask + x_rec[half:].flip(0) * (1 - mask)
    target = head.patchify(inputs)
    if getattr(head, 'norm_pix', False):
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        pred = pred * (var + 1.e-6)**.5 + mean
    B, _, H, W = inputs.shape
    p = head.patch_size
    pixel_mask = F.interpolate(
        mask.reshape(1, 1, H // p, W // p).to(inputs.dtype),
        size=(H, W),
        mode='nearest')
    mixed = inputs * (1 - pixel_mask) + inputs.flip(0) * pixel_mask
    return OrderedDict(
        original=inputs,
        mixed=mixed,
        reconstruction=head.unpatchify(pred),
        mask=mask.reshape(1, -1).expand(B, -1))
