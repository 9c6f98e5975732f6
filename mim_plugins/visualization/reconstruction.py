# Copyright (c) OpenMMLab. All rights reserved.
"""Pictures of masked inputs and their reconstructions (MAE-style models)."""
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from torch import nn


@torch.no_grad()
def mae_reconstruct(model: nn.Module,
                    inputs: torch.Tensor,
                    seed: Optional[int] = 0) -> Dict[str, torch.Tensor]:
    """Mask, encode, decode and un-patchify images with an MAE-style model.

    The model must have an MAE-like ``backbone(inputs) -> (latent, mask,
    ids_restore)``, a ``neck(latent, ids_restore) -> pred`` and a head with
    ``patchify``/``unpatchify`` and ``norm_pix``.  With ``norm_pix`` the
    prediction is per-patch normalised; it is mapped back to pixels with the
    mean/std of the true patch, as in the MAE paper's figures.

    Args:
        model (nn.Module): The algorithm (e.g. ``mmpretrain.MAE``).
        inputs (Tensor): Pre-processed (normalised) images (B, C, H, W).
        seed (int, optional): Seed of the random mask. Defaults to 0.

    Returns:
        dict[str, Tensor]: ``original``, ``masked`` (masked patches zeroed),
        ``reconstruction`` (prediction everywhere) and ``composite``
        (visible patches from the input, masked ones predicted), all in the
        normalised input space, and ``mask`` (B, L) with 1 = masked.
    """
    was_training = model.training
    model.eval()
    if seed is not None:
        torch.manual_seed(seed)
    latent, mask, ids_restore = model.backbone(inputs)[:3]
    pred = model.neck(latent, ids_restore)
    if isinstance(pred, (list, tuple)):
        pred = pred[0]
    head = model.head
    target = head.patchify(inputs)
    if getattr(head, 'norm_pix', False):
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        pred = pred * (var + 1.e-6)**.5 + mean
    m = mask.unsqueeze(-1).to(pred.dtype)
    model.train(was_training)
    return dict(
        original=inputs,
        masked=head.unpatchify(target * (1 - m)),
        reconstruction=head.unpatchify(pred),
        composite=head.unpatchify(target * (1 - m) + pred * m),
        mask=mask)


def save_reconstruction_grid(images: Dict[str, torch.Tensor],
                             out_file: str,
                             mean: Sequence[float],
                             std: Sequence[float],
                             num_images: int = 8,
                             title: Optional[str] = None) -> str:
    """Save rows of original / masked / reconstruction / composite images.

    Args:
        images (dict[str, Tensor]): Output of :func:`mae_reconstruct`.
        out_file (str): PNG path.
        mean (Sequence[float]): Per-channel mean of the data preprocessor.
        std (Sequence[float]): Per-channel std of the data preprocessor.
        num_images (int): Number of columns. Defaults to 8.
        title (str, optional): Figure title.

    Returns:
        str: ``out_file``.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    rows = ['original', 'masked', 'reconstruction', 'composite']
    n = min(num_images, images['original'].shape[0])
    mean_t = torch.tensor(mean).view(1, -1, 1, 1)
    std_t = torch.tensor(std).view(1, -1, 1, 1)
    fig, axes = plt.subplots(
        len(rows), n, figsize=(1.3 * n, 1.4 * len(rows)), squeeze=False)
    for r, name in enumerate(rows):
        imgs = (images[name][:n].float().cpu() * std_t + mean_t).clamp(0, 255)
        for c in range(n):
            img = imgs[c].permute(1, 2, 0).numpy().astype(np.uint8)
            ax = axes[r][c]
            if img.shape[2] == 1:
                ax.imshow(img[..., 0], cmap='gray', vmin=0, vmax=255)
            else:
                ax.imshow(img)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out_file, dpi=120)
    plt.close(fig)
    return out_file
