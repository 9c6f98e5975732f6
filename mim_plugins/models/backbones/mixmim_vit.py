# Copyright (c) OpenMMLab. All rights reserved.
import random
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmpretrain.models import MAEViT
from mmpretrain.models.backbones.vision_transformer import \
    TransformerEncoderLayer
from mmpretrain.models.utils import MultiheadAttention
from mmpretrain.registry import MODELS

from ..utils.checks import check_img_size
from ..utils.decoder import EncoderGrid


def check_mixing_ratios(mask_ratio: float,
                        range_mask_ratio: float,
                        prefix: str = '') -> None:
    """Check MixMIM's mixing ratios.

    A fraction ``mask_ratio + U(0, range_mask_ratio)`` of the cells is
    taken from the partner image, and both images must keep a cell.

    Args:
        mask_ratio (float): Fraction of mixed cells.
        range_mask_ratio (float): Range of the random extra fraction.
        prefix (str): Prepended to the field names in the messages, e.g.
            ``'backbone.'``. Defaults to ``''``.

    Raises:
        ValueError: If ``mask_ratio`` is not in (0, 1) or
            ``range_mask_ratio`` not in ``[0, 1 - mask_ratio)``.
    """
    if not 0 < mask_ratio < 1:
        raise ValueError(f'`{prefix}mask_ratio` (fraction of mixed cells) '
                         f'must be in (0, 1), got {mask_ratio}')
    if range_mask_ratio < 0 or mask_ratio + range_mask_ratio >= 1:
        raise ValueError(
            f'`{prefix}range_mask_ratio` must satisfy 0 <= range_mask_ratio '
            f'< 1 - mask_ratio (mask_ratio={mask_ratio}), got '
            f'{range_mask_ratio}')


def check_pairing_batch(batch_size: int) -> None:
    """Raise if a batch cannot be paired by batch flip.

    MixMIM mixes image ``i`` with image ``B-1-i``; with an odd batch the
    middle image would be mixed with itself.
    """
    if batch_size % 2:
        raise ValueError(
            'MixMIM pairs image i with image B-1-i of the per-device batch, '
            f'so the batch size must be even, got {batch_size} (the middle '
            'image would be mixed with itself); set an even '
            '`train_dataloader.batch_size` and `drop_last=True`')


def masked_self_attention(attn: MultiheadAttention, x: torch.Tensor,
                          attn_mask: torch.Tensor) -> torch.Tensor:
    """Run an mmpretrain ``MultiheadAttention`` with a boolean mask.

    Uses the module's own weights and output path (``proj``, dropouts,
    layer scale), only adding ``attn_mask`` to the scaled dot product.

    Args:
        attn (MultiheadAttention): The attention module.
        x (torch.Tensor): Tokens, (B, N, C).
        attn_mask (torch.Tensor): Boolean (N, N); True where attending is
            allowed.

    Returns:
        torch.Tensor: (B, N, C).
    """
    B, N, _ = x.shape
    qkv = attn.qkv(x).reshape(B, N, 3, attn.num_heads,
                              attn.head_dims).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    attn_drop = attn.attn_drop if attn.training else 0.
    x = attn.scaled_dot_product_attention(
        q, k, v, attn_mask=attn_mask, dropout_p=attn_drop)
    x = x.transpose(1, 2).reshape(B, N, attn.embed_dims)
    x = attn.proj(x)
    x = attn.out_drop(attn.gamma1(attn.proj_drop(x)))
    if attn.v_shortcut:
        x = v.squeeze(1) + x
    return x


def masked_encoder_layer(layer: TransformerEncoderLayer, x: torch.Tensor,
                         attn_mask: torch.Tensor) -> torch.Tensor:
    """``TransformerEncoderLayer.forward`` with an attention mask."""
    x = x + masked_self_attention(layer.attn, layer.ln1(x), attn_mask)
    return layer.ffn(layer.ln2(x), identity=x)


@MODELS.register_module()
class MixMIMViT(MAEViT):
    """Plain ViT encoder for MixMIM pre-training.

    Implementation of `MixMAE: Mixed and Masked Autoencoder for Efficient
    Pretraining of Hierarchical Vision Transformers
    <https://arxiv.org/abs/2205.13137>`_ on a plain (non-hierarchical) ViT.

    Each image ``i`` of the per-device batch is mixed with image ``B-1-i``
    (batch flip): one random mask per batch on a grid of ``cell_size``-pixel
    cells (``mask_ratio`` of them, 0.5 by default) decides which patch tokens
    come from the partner. Every attention layer gets a same-source mask, so
    a token only attends to tokens (and a class token) of its own image and
    the two images never exchange information: the encoder behaves like two
    50 %-masked MAE encoders run densely, with no [MASK] token.

    Each mixed sample carries two class tokens (the same learnt
    ``cls_token``), one per source image. The parameters are exactly those
    of :class:`MAEViT`, so the encoder loads into a plain
    :class:`mmpretrain.models.VisionTransformer` (``prefix='backbone.'``) for
    fine-tuning, as MAE checkpoints do; ``forward(x, mask=None)`` is the
    plain ViT forward.

    Args:
        arch (str | dict): ViT architecture. Defaults to 'b'.
        img_size (int): Input size. Defaults to 224.
        patch_size (int): Patch size. Defaults to 16.
        cell_size (int): Side in pixels of a mixing cell, a multiple of
            ``patch_size`` dividing ``img_size``. Defaults to 32 (MixMIM's
            cell, 7x7 cells on 224 px).
        mask_ratio (float): Fraction of cells taken from the partner, in
            (0, 1). Defaults to 0.5.
        range_mask_ratio (float): Adds U(0, range) to ``mask_ratio`` at each
            step (official option); ``mask_ratio + range_mask_ratio < 1``.
            Defaults to 0.
        Other arguments are those of :class:`MAEViT`.
    """

    def __init__(self,
                 arch: Union[str, dict] = 'b',
                 img_size: int = 224,
                 patch_size: int = 16,
                 cell_size: int = 32,
                 mask_ratio: float = 0.5,
                 range_mask_ratio: float = 0.0,
                 out_indices: Union[Sequence, int] = -1,
                 drop_rate: float = 0,
                 drop_path_rate: float = 0,
                 norm_cfg: dict = dict(type='LN', eps=1e-6),
                 final_norm: bool = True,
                 out_type: str = 'raw',
                 interpolate_mode: str = 'bicubic',
                 patch_cfg: dict = dict(),
                 layer_cfgs: dict = dict(),
                 init_cfg: Optional[Union[List[dict], dict]] = None) -> None:
        check_mixing_ratios(mask_ratio, range_mask_ratio)
        check_img_size(img_size, patch_size)
        super().__init__(
            arch=arch,
            img_size=img_size,
            patch_size=patch_size,
            out_indices=out_indices,
            drop_rate=drop_rate,
            drop_path_rate=drop_path_rate,
            norm_cfg=norm_cfg,
            final_norm=final_norm,
            out_type=out_type,
            interpolate_mode=interpolate_mode,
            patch_cfg=patch_cfg,
            layer_cfgs=layer_cfgs,
            mask_ratio=mask_ratio,
            init_cfg=init_cfg)
        h, w = self.patch_resolution
        if cell_size % patch_size:
            raise ValueError(f'`cell_size`={cell_size} must be a multiple of '
                             f'`patch_size`={patch_size}')
        cell_patches = cell_size // patch_size
        if h % cell_patches or w % cell_patches:
            raise ValueError(
                f'`img_size` ({h * patch_size}x{w * patch_size} px) must be '
                f'divisible by the mixing cell `cell_size`={cell_size}')
        if (h // cell_patches) * (w // cell_patches) < 2:
            raise ValueError('`cell_size` must leave at least 2 mixing cells '
                             f'in `img_size` ({h * patch_size}x'
                             f'{w * patch_size} px), got {cell_size}')
        self.cell_size = cell_size
        self.cell_patches = cell_patches
        self.cell_resolution = (h // cell_patches, w // cell_patches)
        self.range_mask_ratio = range_mask_ratio

    def num_mixed_cells(self, ratio: float) -> int:
        """Cells taken from the partner at a mixing ratio.

        At least one cell of each image is kept, whatever the ratio.
        """
        num_cells = self.cell_resolution[0] * self.cell_resolution[1]
        return min(max(int(num_cells * ratio), 1), num_cells - 1)

    def fewest_reconstructed(self) -> int:
        """The fewest patch tokens a decoder branch reconstructs.

        Each branch reconstructs the cells of the other image: at least
        ``min(mixed, unmixed)`` cells over the mixing ratios
        ``[mask_ratio, mask_ratio + range_mask_ratio]``.
        """
        num_cells = self.cell_resolution[0] * self.cell_resolution[1]
        fewest = num_cells
        for ratio in (self.mask_ratio,
                      self.mask_ratio + self.range_mask_ratio):
            mixed = self.num_mixed_cells(ratio)
            fewest = min(fewest, mixed, num_cells - mixed)
        return fewest * self.cell_patches**2

    def decoder_grid(self) -> EncoderGrid:
        """One decoder token per patch; the fewest a branch reconstructs."""
        (h, w) = self.patch_resolution
        patch = self.patch_embed.projection.kernel_size[0]
        return EncoderGrid(
            grids=(h, ),
            widths=(self.embed_dims, ),
            patch_size=patch,
            img_size=(h * patch, w * patch),
            in_channels=self.patch_embed.projection.in_channels,
            fewest_masked=self.fewest_reconstructed(),
            masking=f'mask_ratio={self.mask_ratio}, range_mask_ratio='
            f'{self.range_mask_ratio}, {h * w} tokens',
            kind='mixed')

    def random_masking(self,
                       x: torch.Tensor,
                       mask_ratio: float = 0.5) -> torch.Tensor:
        """Draw the mixing mask shared by the batch.

        Args:
            x (torch.Tensor): Any tensor on the target device.
            mask_ratio (float): Fraction of cells from the partner.

        Returns:
            torch.Tensor: (1, L, 1) float mask at patch resolution, 1 where
            the token comes from the batch-flipped partner.
        """
        ch, cw = self.cell_resolution
        num_cells = ch * cw
        ratio = mask_ratio + random.uniform(0.0, self.range_mask_ratio)
        num_mixed = self.num_mixed_cells(ratio)
        noise = torch.rand(num_cells, device=x.device)
        mask = torch.zeros(num_cells, device=x.device)
        mask[torch.argsort(noise)[:num_mixed]] = 1
        mask = mask.reshape(1, 1, ch, cw)
        mask = F.interpolate(mask, size=self.patch_resolution, mode='nearest')
        return mask.reshape(1, -1, 1).contiguous()

    @staticmethod
    def source_attention_mask(mask: torch.Tensor,
                              num_cls: int = 2) -> torch.Tensor:
        """Same-source attention mask over ``[cls_0, cls_1, patches]``.

        Args:
            mask (torch.Tensor): (1, L, 1) mixing mask.
            num_cls (int): Leading class tokens, class token ``s`` belongs
                to source ``s``. Defaults to 2.

        Returns:
            torch.Tensor: Boolean (num_cls + L, num_cls + L), True where
            query and key come from the same source image.
        """
        cls_src = torch.arange(num_cls, device=mask.device, dtype=mask.dtype)
        src = torch.cat([cls_src, mask.flatten()])
        return src[:, None] == src[None, :]

    def forward(
        self,
        x: torch.Tensor,
        mask: Optional[bool] = True
    ) -> Union[Tuple[torch.Tensor], Tuple[torch.Tensor, torch.Tensor]]:
        """Mixed forward for pre-training, plain ViT forward otherwise.

        Args:
            x (torch.Tensor): Images, (B, C, H, W).
            mask (bool, optional): ``None`` or ``False`` runs the plain
                :class:`VisionTransformer` forward (no mixing).

        Returns:
            tuple: With mixing, ``(tokens, mask)``: the mixed patch tokens
            (B, L, C) without class tokens and the (1, L, 1) mixing mask.
        """
        # MAEViT tests `mask is None or False`, which lets False mix
        if mask is None or mask is False:
            return super(MAEViT, self).forward(x)

        B = x.shape[0]
        check_pairing_batch(B)
        x, patch_resolution = self.patch_embed(x)
        if tuple(patch_resolution) != tuple(self.patch_resolution):
            raise ValueError(f'MixMIMViT pre-trains at `img_size` '
                             f'{self.patch_resolution} patches, got '
                             f'{tuple(patch_resolution)}')
        mix_mask = self.random_masking(x, self.mask_ratio)
        # mix in token space, before the position embedding
        x = x * (1. - mix_mask) + x.flip(0) * mix_mask
        x = x + self.pos_embed[:, 1:, :]
        # one class token per source image
        cls_tokens = (self.cls_token + self.pos_embed[:, :1, :]).expand(
            B, 2, -1)
        x = torch.cat((cls_tokens, x), dim=1)
        x = self.drop_after_pos(x)
        x = self.pre_norm(x)

        attn_mask = self.source_attention_mask(mix_mask)
        for layer in self.layers:
            x = masked_encoder_layer(layer, x, attn_mask)
        if self.final_norm:
            x = self.ln1(x)
        return x[:, 2:], mix_mask
