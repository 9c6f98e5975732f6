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


def pixel_mask(head: nn.Module, mask: torch.Tensor,
               inputs: torch.Tensor) -> torch.Tensor:
    """The patch mask (B, L) as a (B, 1, H, W) pixel mask, 1 = masked."""
    B, C, H, W = inputs.shape
    patch = head.patch_size
    grid = (H // patch, W // patch)
    return F.interpolate(
        mask.float().reshape(-1, 1, *grid).expand(B, 1, *grid),
        scale_factor=patch,
        mode='nearest').to(inputs.dtype)


def scale_panels(head: nn.Module, k: int, pred: torch.Tensor,
                 inputs: torch.Tensor,
                 mask: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Pictures of one LocalMIM scale ``k`` of ``head``.

    Pixel targets: the reconstruction at the scale's cell size (per-cell
    normalisation undone with the true cell's statistics) and the
    composite. HOG targets: the per-cell HOG energy (norm over the
    orientation bins) of the target and of the prediction, dark to bright.

    Returns:
        dict[str, Tensor]: ``reconstruction``/``composite`` for pixels,
        ``HOG target``/``HOG prediction`` for HOG.
    """
    cell = head.cell_sizes[k]
    if head.target == 'pixel':
        if head.norm_pix:
            raw = _cells(inputs, cell)
            mean = raw.mean(dim=-1, keepdim=True)
            var = raw.var(dim=-1, keepdim=True)
            pred = pred * (var + 1.e-6)**.5 + mean
        rec = _image(pred, cell, inputs.shape)
        m = pixel_mask(head, mask, inputs)
        return OrderedDict(
            reconstruction=rec, composite=inputs * (1 - m) + rec * m)
    target = head.construct_targets(inputs)[k]
    low, high = inputs.amin(), inputs.amax()
    return OrderedDict([
        ('HOG target', _energy_image(target, inputs.shape, low, high)),
        ('HOG prediction', _energy_image(pred, inputs.shape, low, high)),
    ])


@register_reconstructor('LocalMIM')
def localmim_panels(model: nn.Module,
                    inputs: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Panels of LocalMIM at its finest scale (the lowest tap's decoder),
    drawn by :func:`scale_panels`.

    Returns:
        dict[str, Tensor]: ``original``, ``masked`` and, for pixels,
        ``reconstruction``/``composite``, for HOG ``HOG target``/``HOG
        prediction``, plus ``mask``.
    """
    latents, mask, ids_restore = model.backbone(inputs)
    preds = model.neck(latents, mask if ids_restore is None else ids_restore)
    head = model.head
    panels = OrderedDict(
        original=inputs, masked=inputs * (1 - pixel_mask(head, mask, inputs)))
    finest = min(range(len(head.scales)), key=lambda k: head.cell_sizes[k])
    panels.update(scale_panels(head, finest, preds[finest], inputs, mask))
    panels['mask'] = mask
    return panels
