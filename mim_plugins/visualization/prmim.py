# Copyright (c) OpenMMLab. All rights reserved.
"""Reconstruction picture of PR-MIM: which masked tokens were decoded."""
from collections import OrderedDict
from typing import Dict

import torch
from torch import nn

from .reconstruction import register_reconstructor


def checkerboard_like(inputs: torch.Tensor) -> torch.Tensor:
    """A one-pixel checkerboard between each image's darkest and brightest
    value, in the input's (normalised) space.

    Args:
        inputs (torch.Tensor): Images ``(B, C, H, W)``.

    Returns:
        torch.Tensor: ``(B, C, H, W)``, alternating per pixel between the
        minimum and the maximum of each image (over all its channels).
    """
    B, C, H, W = inputs.shape
    rows = torch.arange(H, device=inputs.device)[:, None]
    cols = torch.arange(W, device=inputs.device)[None, :]
    board = ((rows + cols) % 2).to(inputs.dtype).expand(B, C, H, W)
    lo = inputs.amin(dim=(1, 2, 3), keepdim=True)
    hi = inputs.amax(dim=(1, 2, 3), keepdim=True)
    return lo + (hi - lo) * board


@register_reconstructor('PRMIM')
def prmim_panels(model: nn.Module,
                 inputs: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Panels of a :class:`PRMIM` model.

    Like :func:`mae_panels`, plus a panel that shows which masked tokens the
    decoder transformer saw ("kept") and which it did not ("thrown"). With
    ``norm_pix`` the prediction is mapped back with the mean/std of the true
    patch, as in the MAE paper's figures.

    With ``thrown_path='none'`` the thrown tokens have no prediction: they
    are zero (like masked patches) in ``reconstruction`` and ``composite``
    and drawn as a plain checkerboard in ``kept_thrown``.

    Args:
        model (nn.Module): A PRMIM model (``backbone`` returns
            ``(latent, mask, ids_restore)``, the neck
            ``(pred, kept_mask, thrown_mask)``).
        inputs (torch.Tensor): Pre-processed images ``(B, C, H, W)``.

    Returns:
        Dict[str, torch.Tensor]: In this order, images ``(B, C, H, W)`` in the
        normalised input space:

        - ``original``: the input.
        - ``masked``: masked patches zeroed.
        - ``reconstruction``: the prediction of every patch.
        - ``composite``: visible patches from the input, masked ones
          predicted (kept by the decoder, thrown by the thrown path).
        - ``kept_thrown``: visible patches from the input, kept masked
          patches with their decoder prediction, thrown patches with their
          thrown-path prediction half blended with a checkerboard.

        and, not drawn, ``(B, L)`` masks with 1 for: ``mask`` (masked),
        ``kept_mask`` (masked and decoded) and ``thrown_mask`` (thrown).
    """
    latent, mask, ids_restore = model.backbone(inputs)[:3]
    pred, kept_mask, thrown_mask = model.neck(latent, ids_restore)
    head = model.head
    target = head.patchify(inputs)
    if getattr(head, 'norm_pix', False):
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        pred = pred * (var + 1.e-6)**.5 + mean

    m = mask.unsqueeze(-1).to(pred.dtype)
    kept = kept_mask.unsqueeze(-1).to(pred.dtype)
    thrown = thrown_mask.unsqueeze(-1).to(pred.dtype)
    if not model.neck.reconstructs_thrown:
        # no thrown prediction: zero, as a masked patch
        pred = pred * (1 - thrown)
    hatch = head.patchify(checkerboard_like(inputs))
    thrown_view = 0.5 * (pred + hatch) if model.neck.reconstructs_thrown \
        else hatch
    visible_part = target * (1 - m)
    return OrderedDict(
        original=inputs,
        masked=head.unpatchify(visible_part),
        reconstruction=head.unpatchify(pred),
        composite=head.unpatchify(visible_part + pred * m),
        kept_thrown=head.unpatchify(visible_part + pred * kept +
                                    thrown_view * thrown),
        mask=mask,
        kept_mask=kept_mask,
        thrown_mask=thrown_mask)
