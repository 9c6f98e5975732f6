# Copyright (c) OpenMMLab. All rights reserved.
from bisect import bisect_right
from typing import List, Optional, Sequence, Tuple, Union

import torch
from mmcv.cnn import build_norm_layer
from mmengine.model import ModuleList
from mmpretrain.models import MAEViT
from mmpretrain.models.backbones.vision_transformer import resize_pos_embed
from mmpretrain.registry import MODELS
from torch import nn

from ..utils.masked_vit import check_masked_vit_kwargs, masked_vit_stem


def check_block_boundaries(block_boundaries: Sequence[int],
                           num_layers: int) -> List[int]:
    """Validate the layer indices that cut an encoder into blocks.

    Args:
        block_boundaries (Sequence[int]): Exclusive end layer of every block,
            e.g. ``[3, 6, 9, 12]`` cuts a 12-layer ViT into 4 blocks of 3.
        num_layers (int): Depth of the encoder.

    Returns:
        list[int]: The boundaries as a list.

    Raises:
        ValueError: If the boundaries are empty, not strictly increasing
            integers in ``[1, num_layers]`` or do not end at ``num_layers``.
    """
    allowed = (f'a non-empty, strictly increasing list of ints in '
               f'[1, {num_layers}] whose last entry is the encoder depth '
               f'{num_layers} (e.g. [{num_layers}] for one block)')
    if (not isinstance(block_boundaries, (list, tuple))
            or len(block_boundaries) == 0 or not all(
                isinstance(b, int) and not isinstance(b, bool)
                for b in block_boundaries)):
        raise ValueError(
            f'block_boundaries must be {allowed}, got {block_boundaries!r}.')
    bounds = list(block_boundaries)
    if bounds[0] < 1 or any(a >= b for a, b in zip(bounds, bounds[1:])):
        raise ValueError('block_boundaries must be strictly increasing '
                         f'and start at >= 1 ({allowed}), got {bounds}.')
    if bounds[-1] != num_layers:
        raise ValueError(f'block_boundaries must end at the encoder depth '
                         f'{num_layers} ({allowed}), got {bounds}.')
    return bounds


@MODELS.register_module()
class BIMViT(MAEViT):
    """Masked ViT encoder cut into blocks for BIM pre-training.

    Implementation of `BIM: Block-Wise Self-Supervised Learning with Masked
    Image Modeling <https://arxiv.org/abs/2311.17218>`_.

    The encoder of :class:`mmpretrain.models.MAEViT` is split into K
    contiguous blocks of transformer layers. Block 1 also owns the patch
    embedding, the position embedding and the cls token. Every block ends
    with its own LayerNorm, which normalises the features its local decoder
    sees; the last block's norm is the usual final norm ``ln1``, so the
    parameter layout of the full-depth encoder is exactly ``MAEViT``'s and
    the prefix up to block k is a ``VisionTransformer`` of that depth whose
    final norm is block k's norm. The un-normalised tokens are what the next
    block receives.

    Args:
        block_boundaries (Sequence[int]): Exclusive end layer of each block,
            strictly increasing and ending at the encoder depth, e.g.
            ``[3, 6, 9, 12]`` for ViT-B with K=4.
        norm_cfg (dict): Config of the normalisation layers, including the
            block norms. Defaults to ``dict(type='LN', eps=1e-6)``.
        **kwargs: Other arguments of :class:`mmpretrain.models.MAEViT`;
            ``mask_ratio`` must be in (0, 1) and ``img_size`` a multiple
            of ``patch_size``.
    """

    def __init__(self,
                 block_boundaries: Sequence[int],
                 norm_cfg: dict = dict(type='LN', eps=1e-6),
                 **kwargs) -> None:
        if not kwargs.get('final_norm', True):
            raise ValueError('BIMViT needs final_norm=True: the last block '
                             'norm is the final norm `ln1`.')
        check_masked_vit_kwargs(kwargs)
        super().__init__(norm_cfg=norm_cfg, **kwargs)
        self.block_boundaries = check_block_boundaries(block_boundaries,
                                                       self.num_layers)
        # Norms closing blocks 1..K-1; block K uses the final norm `ln1`.
        self.block_norms = ModuleList([
            build_norm_layer(norm_cfg, self.embed_dims)[1]
            for _ in self.block_boundaries[:-1]
        ])

    @property
    def num_blocks(self) -> int:
        """int: Number of blocks K."""
        return len(self.block_boundaries)

    def block_layers(self, block: int) -> range:
        """Indices of the transformer layers of ``block`` (0-based)."""
        start = self.block_boundaries[block - 1] if block > 0 else 0
        return range(start, self.block_boundaries[block])

    def block_norm(self, block: int) -> nn.Module:
        """The norm closing ``block`` (0-based)."""
        if block == self.num_blocks - 1:
            return self.ln1
        return self.block_norms[block]

    def get_block_id(self, param_name: str) -> int:
        """Index (0-based) of the block owning a parameter of this module.

        Args:
            param_name (str): Parameter name relative to this module.

        Returns:
            int: The block index.
        """
        parts = param_name.split('.')
        if parts[0] == 'layers':
            return bisect_right(self.block_boundaries, int(parts[1]))
        if parts[0] == 'block_norms':
            return int(parts[1])
        if parts[0] in ('ln1', 'ln2'):
            return self.num_blocks - 1
        # patch_embed, cls_token, pos_embed, pre_norm: the stem of block 1
        return 0

    def forward_stem(
            self, x: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Embed, randomly mask and prepend the cls token (as ``MAEViT``).

        Args:
            x (torch.Tensor): Images of shape (B, C, H, W).

        Returns:
            tuple: Tokens (B, 1 + visible, C), the mask (B, L) with 1 for
            removed patches, and the ids restoring the patch order.
        """
        return masked_vit_stem(self, x)

    def forward_block(self, x: torch.Tensor,
                      block: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Run the layers of one block.

        Args:
            x (torch.Tensor): Tokens entering the block.
            block (int): Block index (0-based).

        Returns:
            tuple: The un-normalised output tokens (input of the next block)
            and the same tokens through the block norm (decoder input).
        """
        for i in self.block_layers(block):
            x = self.layers[i](x)
        return x, self.block_norm(block)(x)

    def forward(
        self,
        x: torch.Tensor,
        mask: Optional[bool] = True
    ) -> Union[Tuple[torch.Tensor, ...], Tuple[torch.Tensor]]:
        """Masked forward of the whole encoder, or ``VisionTransformer``'s.

        With ``mask=True`` the output equals ``MAEViT``'s: the final-normed
        visible tokens, the mask and the restore ids.
        """
        if not mask:
            return super().forward(x, mask=None)
        x, mask, ids_restore = self.forward_stem(x)
        for block in range(self.num_blocks):
            x, latent = self.forward_block(x, block)
        return latent, mask, ids_restore

    def forward_prefix(self, x: torch.Tensor, num_blocks: int) -> torch.Tensor:
        """Un-masked features of the encoder truncated after a block.

        This is what the backbone exported for that depth computes (see
        ``tools/model_converters/bim_extract_backbones.py``).

        Args:
            x (torch.Tensor): Images of shape (B, C, H, W).
            num_blocks (int): Number of leading blocks to run (1..K).

        Returns:
            torch.Tensor: Features formatted by ``out_type``.
        """
        if not 1 <= num_blocks <= self.num_blocks:
            raise ValueError(f'num_blocks must be in [1, {self.num_blocks}], '
                             f'got {num_blocks}.')
        B = x.shape[0]
        x, patch_resolution = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(B, -1, -1), x), dim=1)
        x = x + resize_pos_embed(
            self.pos_embed,
            self.patch_resolution,
            patch_resolution,
            mode=self.interpolate_mode,
            num_extra_tokens=self.num_extra_tokens)
        x = self.pre_norm(self.drop_after_pos(x))
        for block in range(num_blocks):
            x, latent = self.forward_block(x, block)
        return self._format_output(latent, patch_resolution)
