# Copyright (c) OpenMMLab. All rights reserved.
"""Pictures of masked inputs and their reconstructions.

:func:`reconstruct` dispatches on the algorithm class (through its MRO, so a
subclass of ``MAE`` without a reconstructor of its own is drawn like MAE);
methods add panels by registering a function with
:func:`register_reconstructor`.  A reconstructor returns an ordered dict of
image batches (B, C, H, W) in the normalised input space; the keys become
the panel titles.
"""
from collections import OrderedDict
from typing import Callable, Dict, Optional, Sequence

import numpy as np
import torch
from torch import nn

_RECONSTRUCTORS: Dict[str, Callable] = {}


def register_reconstructor(name: str) -> Callable:
    """Register ``fn(model, inputs) -> dict`` for algorithm class ``name``."""

    def _register(fn: Callable) -> Callable:
        _RECONSTRUCTORS[name] = fn
        return fn

    return _register


def reconstruct(model: nn.Module,
                inputs: torch.Tensor,
                seed: Optional[int] = 0) -> Dict[str, torch.Tensor]:
    """Panels of a model's reconstruction of ``inputs``.

    Args:
        model (nn.Module): The algorithm (unwrapped).
        inputs (Tensor): Pre-processed images (B, C, H, W).
        seed (int, optional): Seed of the random mask. Defaults to 0.

    Returns:
        dict[str, Tensor]: Ordered panels, at least ``original``.
    """
    for cls in type(model).__mro__:
        if cls.__name__ in _RECONSTRUCTORS:
            was_training = model.training
            model.eval()
            # A private RNG: the training run's mask stream (and so exact
            # resume) must not depend on when pictures are drawn.
            with torch.random.fork_rng(enabled=seed is not None), \
                    torch.no_grad():
                if seed is not None:
                    torch.manual_seed(seed)
                panels = _RECONSTRUCTORS[cls.__name__](model, inputs)
            model.train(was_training)
            return panels
    raise NotImplementedError(
        f'no reconstruction picture for {type(model).__name__}; register one '
        'with mim_plugins.visualization.register_reconstructor')


@register_reconstructor('MAE')
def mae_panels(model: nn.Module,
               inputs: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Panels of an MAE-style model (``backbone``/``neck``/``head``).

    The backbone returns ``(latent, mask, ids_restore)``, the neck the
    per-patch prediction, and the head has ``patchify``/``unpatchify`` and
    ``norm_pix``.  With ``norm_pix`` the prediction is per-patch normalised;
    it is mapped back with the mean/std of the true patch, as in the MAE
    paper's figures.

    Returns:
        dict[str, Tensor]: ``original``, ``masked`` (masked patches zeroed),
        ``reconstruction``, ``composite`` (visible patches from the input,
        masked ones predicted) and ``mask`` (B, L) with 1 = masked (not an
        image, not drawn).
    """
    latent, mask, ids_restore = model.backbone(inputs)[:3]
    pred = model.neck(latent, ids_restore)
    head = model.head
    target = head.patchify(inputs)
    pred = predicted_patches(head, pred, target)
    m = mask.unsqueeze(-1).to(pred.dtype)
    return OrderedDict(
        original=inputs,
        masked=head.unpatchify(target * (1 - m)),
        reconstruction=head.unpatchify(pred),
        composite=head.unpatchify(target * (1 - m) + pred * m),
        mask=mask)


def predicted_patches(head: nn.Module, pred, target: torch.Tensor):
    """A decoder's prediction as patches in the input space.

    Args:
        head (nn.Module): An MAE-style head (``norm_pix``).
        pred (Tensor | tuple): Decoder output (B, L, P), or a tuple whose
            first item it is.
        target (Tensor): The patchified input (B, L, P).

    Returns:
        Tensor: (B, L, P); with ``norm_pix`` the per-patch normalisation is
        undone with the true patch's mean and std.
    """
    if isinstance(pred, (list, tuple)):
        pred = pred[0]
    if getattr(head, 'norm_pix', False):
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        pred = pred * (var + 1.e-6)**.5 + mean
    return pred


@register_reconstructor('BIM')
def bim_panels(model: nn.Module,
               inputs: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Panels of BIM: one composite per block (each has its own decoder).

    A block with a LocalMIM scale decoder is drawn at its scale
    (:func:`scale_panels`: its composite for pixels, its HOG prediction
    for HOG).

    Returns:
        dict[str, Tensor]: ``original``, ``masked``, ``block1`` ...
        ``blockK`` (visible patches from the input, masked ones as that
        block's decoder predicts them) and ``mask``.
    """
    from ..models.heads import LocalMIMHead
    from .localmim import pixel_mask, scale_panels  # it imports this module
    x, mask, ids_restore = model.backbone.forward_stem(inputs)
    panels = OrderedDict(original=inputs)
    for k in range(model.num_blocks):
        x, latent = model.backbone.forward_block(x, k)
        head = model.head[k]
        pred = model.neck[k](latent, ids_restore)
        if k == 0:
            panels['masked'] = inputs * (1 - pixel_mask(head, mask, inputs))
        if isinstance(head, LocalMIMHead):  # a LocalMIM scale decoder
            drawn = scale_panels(head, 0, pred, inputs, mask)
            panels[f'block{k + 1}'] = drawn.get('composite',
                                                drawn.get('HOG prediction'))
            continue
        target = head.patchify(inputs)
        pred = predicted_patches(head, pred, target)
        m = mask.unsqueeze(-1).to(pred.dtype)
        panels[f'block{k + 1}'] = head.unpatchify(target * (1 - m) + pred * m)
    panels['mask'] = mask
    return panels


def mae_reconstruct(model: nn.Module,
                    inputs: torch.Tensor,
                    seed: Optional[int] = 0) -> Dict[str, torch.Tensor]:
    """:func:`mae_panels` in eval mode with a seeded mask."""
    was_training = model.training
    model.eval()
    with torch.random.fork_rng(enabled=seed is not None), torch.no_grad():
        if seed is not None:
            torch.manual_seed(seed)
        panels = mae_panels(model, inputs)
    model.train(was_training)
    return panels


def render_reconstruction_grid(images: Dict[str, torch.Tensor],
                               mean: Sequence[float],
                               std: Sequence[float],
                               num_images: int = 8,
                               title: Optional[str] = None,
                               transpose: bool = False) -> np.ndarray:
    """Draw the panels as a grid and return it as an RGB uint8 array.

    Every 4-D tensor of ``images`` is a panel (row); columns are images.

    Args:
        images (dict[str, Tensor]): Output of :func:`reconstruct`.
        mean (Sequence[float]): Per-channel mean of the data preprocessor.
        std (Sequence[float]): Per-channel std of the data preprocessor.
        num_images (int): Number of images drawn. Defaults to 8.
        title (str, optional): Figure title.
        transpose (bool): Panels as columns instead of rows (one picture
            per image). Defaults to False.

    Returns:
        np.ndarray: (H, W, 3) uint8 image.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    rows = [k for k, v in images.items() if v.dim() == 4]
    n = min(num_images, images[rows[0]].shape[0])
    mean_t = torch.tensor(mean, dtype=torch.float).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float).view(1, -1, 1, 1)
    shape = (n, len(rows)) if transpose else (len(rows), n)
    fig, axes = plt.subplots(
        *shape,
        figsize=(1.3 * shape[1], 1.4 * shape[0]),
        dpi=120,
        squeeze=False)
    for r, name in enumerate(rows):
        imgs = (images[name][:n].float().cpu() * std_t + mean_t).clamp(0, 255)
        for c in range(n):
            img = imgs[c].permute(1, 2, 0).numpy().astype(np.uint8)
            ax = axes[c][r] if transpose else axes[r][c]
            if img.shape[2] == 1:
                ax.imshow(img[..., 0], cmap='gray', vmin=0, vmax=255)
            else:
                ax.imshow(img)
            ax.set_xticks([])
            ax.set_yticks([])
            if transpose and c == 0:
                ax.set_title(name, fontsize=8)
            elif not transpose and c == 0:
                ax.set_ylabel(name, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.canvas.draw()
    array = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return array


def save_reconstruction_grid(images: Dict[str, torch.Tensor],
                             out_file: str,
                             mean: Sequence[float],
                             std: Sequence[float],
                             num_images: int = 8,
                             title: Optional[str] = None,
                             transpose: bool = False) -> str:
    """Save :func:`render_reconstruction_grid` as a PNG.

    Returns:
        str: ``out_file``.
    """
    from PIL import Image
    Image.fromarray(
        render_reconstruction_grid(images, mean, std, num_images, title,
                                   transpose)).save(out_file)
    return out_file
