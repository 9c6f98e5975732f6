# Copyright (c) OpenMMLab. All rights reserved.
from typing import Tuple

import torch
from mmpretrain.models import MAEViT


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
