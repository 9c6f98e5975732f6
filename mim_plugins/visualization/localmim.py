# Copyright (c) OpenMMLab. All rights reserved.
"""Reconstruction pictures of LocalMIM: its finest scale."""
from collections import OrderedDict
from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

from .reconstruction import register_reconstructor


def _cells(x: torch.Tensor, cell: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, h*w, cell*cell*C), the head's cell layout."""
    B, C, H, W = x.shape
    x = x.reshape(B, C, H // cell, cell, W // cell, cell)
    return torch.einsum('nchpwq->nhwpqc', x).reshape(B, -1, cell * cell * C)


def _image(cells: torch.Tensor, cell: int, shape) -> torch.Tensor:
    """Inverse of :func:`_cells`."""
    B, C, H, W = shape
    x = cells.reshape(B, H // cell, W // cell, cell, cell, C)
    return torch.einsum('nhwpqc->nchpwq', x).reshape(B, C, H, W)


def _energy_image(values: torch.Tensor, shape, low: torch.Tensor,
                  high: torch.Tensor) -> torch.Tensor:
    """Per-cell HOG energy (B, cells, bins) as an image in [low, high]."""
    B, C, H, W = shape
    energy = values.norm(dim=-1)
    side = int(round(energy.shape[1]**.5))
    energy = energy.reshape(B, 1, side, side)
    energy = energy / energy.flatten(1).amax(1).clamp_min(1e-6).view(
        B, 1, 1, 1)
    energy = F.interpolate(energy, size=(H, W), mode='nearest')
    return low + (high - low) * energy.expand(B, C, H, W)


@register_reconstructor('LocalMIM')
def localmim_panels(model: nn.Module,
                    inputs: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Panels of LocalMIM at its finest scale (the lowest tap's decoder).

    Pixel targets: the reconstruction of the masked patches at the finest
    cell size (per-cell normalisation undone with the true cell's
    statistics) and the composite.  HOG targets: the per-cell HOG energy
    (norm over the orientation bins) of the target and of the prediction,
    drawn dark to bright.

    Returns:
        dict[str, Tensor]: ``original``, ``masked`` and, for pixels,
        ``reconstruction``/``composite``, for HOG ``HOG target``/``HOG
        prediction``, plus ``mask``.
    """
    latents, mask, ids_restore = model.backbone(inputs)
    preds = model.neck(latents, mask if ids_restore is None else ids_restore)
    head = model.head
    B, C, H, W = inputs.shape
    patch = head.patch_size
    grid = (H // patch, W // patch)
    pixel_mask = F.interpolate(
        mask.float().reshape(-1, 1, *grid).expand(B, 1, *grid),
        scale_factor=patch,
        mode='nearest').to(inputs.dtype)
    panels = OrderedDict(original=inputs, masked=inputs * (1 - pixel_mask))
    finest = min(range(len(head.scales)), key=lambda k: head.cell_sizes[k])
    cell, pred = head.cell_sizes[finest], preds[finest]
    if head.target == 'pixel':
        if head.norm_pix:
            raw = _cells(inputs, cell)
            mean = raw.mean(dim=-1, keepdim=True)
            var = raw.var(dim=-1, keepdim=True)
            pred = pred * (var + 1.e-6)**.5 + mean
        rec = _image(pred, cell, inputs.shape)
        panels['reconstruction'] = rec
        panels['composite'] = inputs * (1 - pixel_mask) + rec * pixel_mask
    else:
        target = head.construct_targets(inputs)[finest]
        low, high = inputs.amin(), inputs.amax()
        panels['HOG target'] = _energy_image(target, inputs.shape, low, high)
        panels['HOG prediction'] = _energy_image(pred, inputs.shape, low, high)
    panels['mask'] = mask
    return panels
