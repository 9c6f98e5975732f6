# Copyright (c) OpenMMLab. All rights reserved.
from typing import Tuple

import torch
from mmpretrain.models import MAEViT

from .checks import check_img_size, check_range
from .decoder import EncoderGrid


def check_masked_vit_kwargs(kwargs: dict) -> None:
    """Check the ``MAEViT`` arguments a masked-ViT subclass passes on.

    ``MAEViT`` accepts any ``mask_ratio`` (0 or 1 leaves nothing to
    reconstruct) and any ``img_size``/``patch_size`` pair.

    Args:
        kwargs (dict): The keyword arguments given to ``MAEViT``.
    """
    check_range(
        'mask_ratio',
        kwargs.get('mask_ratio', 0.75),
        0,
        1,
        low_open=True,
        high_open=True)
    check_img_size(kwargs.get('img_size', 224), kwargs.get('patch_size', 16))


def masked_vit_stem(
        vit: MAEViT,
        x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The input stage of :class:`MAEViT`'s masked forward.

    Embeds the patches, adds the position embedding, keeps a random
    ``1 - mask_ratio`` of the patches and prepends the [CLS] token, exactly
    as ``MAEViT.forward`` does before its layers.

    Args:
        vit (MAEViT): The masked encoder.
        x (torch.Tensor): Images of shape (B, C, H, W).

    Returns:
        tuple: Tokens (B, 1 + visible, C), the mask (B, L) with 1 for
        removed patches, and the ids restoring the patch order (B, L).
    """
    B = x.shape[0]
    x = vit.patch_embed(x)[0]
    x = x + vit.pos_embed[:, 1:, :]
    x, mask, ids_restore = vit.random_masking(x, vit.mask_ratio)
    cls_tokens = (vit.cls_token + vit.pos_embed[:, :1, :]).expand(B, -1, -1)
    return torch.cat((cls_tokens, x), dim=1), mask, ids_restore


def masked_vit_grid(vit: MAEViT, num_outputs: int = 1) -> EncoderGrid:
    """What a masked ViT hands its decoders (the patch grid, its width).

    Args:
        vit (MAEViT): The masked encoder; its ``mask_ratio`` must leave
            tokens to see and to reconstruct (``MAEViT`` accepts any).
        num_outputs (int): Outputs read by decoders, all on the patch grid
            (LocalMIM's taps). Defaults to 1.

    Returns:
        EncoderGrid: The grid, for :func:`check_decoder`.
    """
    check_range(
        'backbone.mask_ratio',
        vit.mask_ratio,
        0,
        1,
        low_open=True,
        high_open=True)
    proj = vit.patch_embed.projection
    patch = proj.kernel_size[0]
    h, w = vit.patch_resolution
    num_patches = h * w
    # MAE masks the same number of patches in every sample
    num_masked = num_patches - int(num_patches * (1 - vit.mask_ratio))
    return EncoderGrid(
        grids=(h, ) * num_outputs,
        widths=(vit.embed_dims, ) * num_outputs,
        patch_size=patch,
        img_size=(h * patch, w * patch),
        in_channels=proj.in_channels,
        fewest_masked=num_masked,
        masking=f'mask_ratio={vit.mask_ratio}')
