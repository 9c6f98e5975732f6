# Copyright (c) OpenMMLab. All rights reserved.
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule, ModuleList
from mmpretrain.models import MAEPretrainDecoder
from mmpretrain.models.utils import LayerNorm2d
from mmpretrain.registry import MODELS
from torch import nn

from ..utils.checks import check_divisible, check_square
from ..utils.decoder import EncoderGrid, ReconstructionDecoder, check_tokens

# Scale of a decoder's output grid relative to the patch grid.
LOCALMIM_SCALES = (4, 2, 1, 0.5)


def check_scales(scales: Sequence[float], field: str = 'scales') -> List:
    """Validate LocalMIM output scales (each one of 4, 2, 1, 0.5)."""
    if not isinstance(scales, (list, tuple)) or len(scales) == 0 or any(
            isinstance(s, bool) or s not in LOCALMIM_SCALES for s in scales):
        raise ValueError(f'`{field}` must be a non-empty list of values in '
                         f'{list(LOCALMIM_SCALES)}, got {scales!r}')
    return list(scales)


def check_localmim_head(head: nn.Module, scales: Sequence[float],
                        out_channels: Sequence[int], encoder: EncoderGrid,
                        where: str) -> None:
    """A LocalMIM head against its decoders (scales, target dims) and the
    encoder (one output per decoder, patch size, image size)."""
    from ..heads.localmim_head import LocalMIMHead  # it imports this module
    if not isinstance(head, LocalMIMHead):
        raise TypeError('a LocalMIM decoder needs `head.type`=\'LocalMIMHead\''
                        f', got {type(head).__name__}{where}')
    n = len(out_channels)
    if len(encoder.grids) != n:
        raise ValueError(
            f'`backbone.out_indices` gives {len(encoder.grids)} taps but the '
            f'neck has {n} decoders; give one per tap (a BIM block: one '
            f'`LocalMIMDecoder`){where}')
    if list(head.scales) != list(scales):
        raise ValueError(f'`neck.scales`={list(scales)} differs from '
                         f'`head.scales`={head.scales}{where}')
    if list(out_channels) != head.target_channels:
        raise ValueError(
            f'`neck.out_channels`={list(out_channels)} must equal the head\'s '
            f'target dims {head.target_channels} (target={head.target!r}, '
            f'in_channels={head.in_channels}){where}')
    if head.patch_size != encoder.patch_size:
        raise ValueError(
            f'`head.patch_size`={head.patch_size} differs from the '
            f'backbone\'s {encoder.patch_size} (its patch, or the Swin '
            f'`mask_patch_size`){where}')
    largest = max(head.cell_sizes)
    if any(size % largest for size in encoder.img_size):
        raise ValueError(
            f'`backbone.img_size`={tuple(encoder.img_size)} is not divisible '
            f'by the largest cell ({largest} px = head.patch_size / '
            f'{min(head.scales)}){where}')


@MODELS.register_module()
class LocalMIMDecoder(ReconstructionDecoder, MAEPretrainDecoder):
    """One LocalMIM decoder: MAE-style transformer plus a scale head.

    Implementation of `Masked Image Modeling with Local Multi-Scale
    Reconstruction <https://arxiv.org/abs/2303.05251>`_.

    The token part is :class:`mmpretrain.models.MAEPretrainDecoder` (linear
    embedding, learned mask token, fixed 2-D sin-cos positions, transformer
    blocks with global attention, LayerNorm). The patch tokens are then laid
    out as a (D, h, w) map and resized to the target grid:

    - ``scale=4``: ConvTranspose(D, D/2, 2, 2) -> channel LayerNorm -> GELU
      -> ConvTranspose(D/2, D/4, 2, 2);
    - ``scale=2``: ConvTranspose(D, D/2, 2, 2);
    - ``scale=1``: identity;
    - ``scale=0.5``: AvgPool(2);

    and a 1x1 convolution maps them to the target dimension.

    Args:
        scale (float): Output grid relative to the patch grid, one of
            ``4, 2, 1, 0.5``.
        out_channels (int): Target dimension per output cell.
        num_patches (int): Number of patches (a square grid).
        embed_dim (int): Encoder width.
        decoder_embed_dim (int): Decoder width D. Defaults to 256.
        decoder_depth (int): Transformer blocks. Defaults to 1.
        decoder_num_heads (int): Attention heads. Defaults to 8.
        mlp_ratio (float): MLP ratio of the blocks. Defaults to 4.
        norm_cfg (dict): Token norm config. Defaults to LN with eps 1e-6.
        init_cfg (dict, optional): Initialization config.
    """

    def __init__(self,
                 scale: float,
                 out_channels: int,
                 num_patches: int,
                 embed_dim: int,
                 decoder_embed_dim: int = 256,
                 decoder_depth: int = 1,
                 decoder_num_heads: int = 8,
                 mlp_ratio: float = 4.,
                 norm_cfg: dict = dict(type='LN', eps=1e-6),
                 init_cfg: Optional[Union[List[dict], dict]] = None) -> None:
        check_scales([scale], 'scale')
        if scale == 4 and decoder_embed_dim % 4:
            raise ValueError('`decoder_embed_dim` must be divisible by 4 for '
                             f'scale 4, got {decoder_embed_dim}')
        side = check_square('num_patches', num_patches)
        check_divisible('decoder_embed_dim', decoder_embed_dim,
                        decoder_num_heads, 'decoder_num_heads')
        super().__init__(
            num_patches=num_patches,
            embed_dim=embed_dim,
            decoder_embed_dim=decoder_embed_dim,
            decoder_depth=decoder_depth,
            decoder_num_heads=decoder_num_heads,
            mlp_ratio=mlp_ratio,
            norm_cfg=norm_cfg,
            predict_feature_dim=decoder_embed_dim,
            init_cfg=init_cfg)
        # The token part ends at the decoder norm; the prediction is the
        # convolutional scale head below.
        self.decoder_pred = nn.Identity()
        self.scale = scale
        self.out_channels = out_channels
        self.grid = side

        D = decoder_embed_dim
        if scale == 4:
            layers = [
                nn.ConvTranspose2d(D, D // 2, kernel_size=2, stride=2),
                LayerNorm2d(D // 2, eps=1e-6),
                nn.GELU(),
                nn.ConvTranspose2d(D // 2, D // 4, kernel_size=2, stride=2)
            ]
            hidden = D // 4
        elif scale == 2:
            layers = [nn.ConvTranspose2d(D, D // 2, kernel_size=2, stride=2)]
            hidden = D // 2
        elif scale == 1:
            layers, hidden = [], D
        else:
            layers, hidden = [nn.AvgPool2d(kernel_size=2, stride=2)], D
        layers.append(nn.Conv2d(hidden, out_channels, kernel_size=1))
        self.pred = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor,
                ids_restore: torch.Tensor) -> torch.Tensor:
        """Decode one tap.

        Args:
            x (torch.Tensor): Tap features (B, 1 + visible, C), cls first.
            ids_restore (torch.Tensor): Restore ids (B, L).

        Returns:
            torch.Tensor: Predictions (B, L * scale^2, out_channels) in
            raster order of the output grid.
        """
        x = super().forward(x, ids_restore)  # (B, L, D), cls removed
        B, L, D = x.shape
        x = x.transpose(1, 2).reshape(B, D, self.grid, self.grid)
        x = self.pred(x)
        return x.flatten(2).transpose(1, 2)

    def reconstruction_loss(self, head: nn.Module, latent: torch.Tensor,
                            ids_restore: torch.Tensor, mask: torch.Tensor,
                            inputs: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The loss of this decoder's scale (``loss_scale0``), for an
        algorithm with one decoder per encoder output (BIM)."""
        return head.loss([self(latent, ids_restore)], inputs, mask)

    def check_fits(self, head: nn.Module, encoder: EncoderGrid,
                   where: str) -> None:
        """Tokens and width; a one-scale LocalMIM head of this scale."""
        check_tokens(self, encoder, where)
        check_localmim_head(head, [self.scale], [self.out_channels], encoder,
                            where)


@MODELS.register_module()
class LocalMIMNeck(ReconstructionDecoder, BaseModule):
    """The LocalMIM decoders, one per encoder tap.

    Implementation of `Masked Image Modeling with Local Multi-Scale
    Reconstruction <https://arxiv.org/abs/2303.05251>`_.

    Decoder k reads tap k (lowest first) and predicts on a grid ``scales[k]``
    times the patch grid: the lower taps reconstruct the finer targets.

    Args:
        num_patches (int): Number of patches of the encoder.
        embed_dim (int): Encoder width.
        out_channels (Sequence[int]): Target dimension of every scale.
        scales (Sequence[float]): Output scale of every decoder.
            Defaults to ``(4, 2, 1, 0.5)``.
        decoder_embed_dim (int): Width of each decoder. Defaults to 256.
        decoder_depth (int): Blocks of each decoder. Defaults to 1.
        decoder_num_heads (int): Heads of each decoder. Defaults to 8.
        mlp_ratio (float): MLP ratio. Defaults to 4.
        norm_cfg (dict): Token norm config. Defaults to LN with eps 1e-6.
        init_cfg (dict, optional): Initialization config.
    """

    def __init__(self,
                 num_patches: int,
                 embed_dim: int,
                 out_channels: Sequence[int],
                 scales: Sequence[float] = LOCALMIM_SCALES,
                 decoder_embed_dim: int = 256,
                 decoder_depth: int = 1,
                 decoder_num_heads: int = 8,
                 mlp_ratio: float = 4.,
                 norm_cfg: dict = dict(type='LN', eps=1e-6),
                 init_cfg: Optional[Union[List[dict], dict]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.scales = check_scales(scales)
        if not isinstance(out_channels, (list, tuple)) or \
                len(out_channels) != len(self.scales):
            raise ValueError(
                f'`out_channels` must list one target dimension per scale '
                f'({len(self.scales)} for scales {self.scales}), got '
                f'{out_channels!r}')
        self.out_channels = list(out_channels)
        self.num_patches = num_patches
        self.embed_dim = embed_dim
        self.decoders = ModuleList([
            LocalMIMDecoder(
                scale=s,
                out_channels=c,
                num_patches=num_patches,
                embed_dim=embed_dim,
                decoder_embed_dim=decoder_embed_dim,
                decoder_depth=decoder_depth,
                decoder_num_heads=decoder_num_heads,
                mlp_ratio=mlp_ratio,
                norm_cfg=norm_cfg)
            for s, c in zip(self.scales, self.out_channels)
        ])

    def forward(self, latents: Sequence[torch.Tensor],
                ids_restore: torch.Tensor) -> List[torch.Tensor]:
        """Decode every tap with its decoder.

        Args:
            latents (Sequence[torch.Tensor]): Tap features, lowest first.
            ids_restore (torch.Tensor): Restore ids (B, L).

        Returns:
            list[torch.Tensor]: Predictions per scale, each
            (B, L * scale^2, out_channels[k]).
        """
        if len(latents) != len(self.decoders):
            raise ValueError(f'got {len(latents)} tap features for '
                             f'{len(self.decoders)} decoders')
        return [
            decoder(x, ids_restore)
            for decoder, x in zip(self.decoders, latents)
        ]

    def reconstruction_loss(self, head: nn.Module,
                            latents: Sequence[torch.Tensor],
                            ids_restore: torch.Tensor, mask: torch.Tensor,
                            inputs: torch.Tensor) -> Dict[str, torch.Tensor]:
        """``loss_scale{k}`` of every tap, finest first."""
        return head.loss(self(latents, ids_restore), inputs, mask)

    def check_fits(self, head: nn.Module, encoder: EncoderGrid,
                   where: str) -> None:
        """One decoder per tap, the taps' grid and width, the head."""
        check_localmim_head(head, self.scales, self.out_channels, encoder,
                            where)
        # every tap on the same grid: check one as a single output
        check_tokens(
            self.decoders[0],
            encoder._replace(
                grids=encoder.grids[:1], widths=encoder.widths[:1]), where)


@MODELS.register_module()
class LocalMIMSwinDecoder(MAEPretrainDecoder):
    """One LocalMIM decoder for a hierarchical (Swin) tap.

    Implementation of `Masked Image Modeling with Local Multi-Scale
    Reconstruction <https://arxiv.org/abs/2303.05251>`_.

    The tap already lies on its target grid, so there is no scale head
    (official ``ViT_Decoder``): :class:`mmpretrain.models.MAEPretrainDecoder`
    (linear embedding, learned mask token, fixed 2-D sin-cos positions,
    transformer blocks with global attention, LayerNorm, linear prediction
    of the target) run on the whole grid, without a [CLS] token: the tap's
    tokens are embedded at its visible cells, the mask token fills the
    masked ones (the mask is shared by the batch).

    Args:
        in_channels (int): Width of the tap.
        grid (int): Side of the tap's (square) token grid.
        out_channels (int): Target dimension per token.
        decoder_embed_dim (int): Decoder width. Defaults to 128.
        decoder_depth (int): Transformer blocks. Defaults to 1.
        decoder_num_heads (int): Attention heads. Defaults to 4.
        mlp_ratio (float): MLP ratio. Defaults to 4.
        norm_cfg (dict): Norm config. Defaults to LN with eps 1e-6.
        init_cfg (dict, optional): Initialization config.
    """

    def __init__(self,
                 in_channels: int,
                 grid: int,
                 out_channels: int,
                 decoder_embed_dim: int = 128,
                 decoder_depth: int = 1,
                 decoder_num_heads: int = 4,
                 mlp_ratio: float = 4.,
                 norm_cfg: dict = dict(type='LN', eps=1e-6),
                 init_cfg: Optional[Union[List[dict], dict]] = None) -> None:
        check_divisible('decoder_embed_dim', decoder_embed_dim,
                        decoder_num_heads, 'decoder_num_heads')
        super().__init__(
            num_patches=grid * grid,
            embed_dim=in_channels,
            decoder_embed_dim=decoder_embed_dim,
            decoder_depth=decoder_depth,
            decoder_num_heads=decoder_num_heads,
            mlp_ratio=mlp_ratio,
            norm_cfg=norm_cfg,
            predict_feature_dim=out_channels,
            init_cfg=init_cfg)
        # mmengine's ModuleList, so that init_weights reaches the blocks
        self.decoder_blocks = ModuleList(self.decoder_blocks)
        self.grid = grid
        self.out_channels = out_channels

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args,
                              **kwargs) -> None:
        """Also load the layout of checkpoints written before this decoder
        was mmpretrain's: norm named ``decoder_norm``, no [CLS] position."""
        for name in ('weight', 'bias'):
            old = f'{prefix}decoder_norm.{name}'
            if old in state_dict:
                state_dict[f'{prefix}{self.decoder_norm_name}.{name}'] = \
                    state_dict.pop(old)
        key = f'{prefix}decoder_pos_embed'
        pos = state_dict.get(key)
        if pos is not None and pos.shape[1] == self.num_patches:
            # the [CLS] entry of the sin-cos embedding is zero (and unused)
            state_dict[key] = torch.cat([torch.zeros_like(pos[:, :1]), pos], 1)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Decode one tap.

        Args:
            x (torch.Tensor): Tap tokens (B, grid^2, C) in raster order
                (masked positions are ignored).
            mask (torch.Tensor): Batch-shared cell mask (B, cells), 1 for
                masked cells, on a square grid dividing ``grid``.

        Returns:
            torch.Tensor: Predictions (B, grid^2, out_channels).
        """
        B = x.shape[0]
        cells = int(round(mask.shape[1]**.5))
        m = mask[:1].reshape(1, 1, cells, cells)
        m = F.interpolate(m, size=(self.grid, self.grid), mode='nearest')
        visible = (m.flatten() == 0).nonzero().squeeze(1)
        tokens = self.decoder_embed(x[:, visible])
        full = self.mask_token.to(tokens.dtype).expand(B, self.num_patches,
                                                       -1).clone()
        full[:, visible] = tokens
        x = full + self.decoder_pos_embed[:, 1:]
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))


@MODELS.register_module()
class LocalMIMSwinNeck(ReconstructionDecoder, BaseModule):
    """The LocalMIM decoders of a Swin encoder, one per stage tap.

    Implementation of `Masked Image Modeling with Local Multi-Scale
    Reconstruction <https://arxiv.org/abs/2303.05251>`_.

    Args:
        in_channels (Sequence[int]): Width of every tap.
        grids (Sequence[int]): Token-grid side of every tap (28, 14, 7, 7
            for Swin-B at 224 px).
        out_channels (Sequence[int]): Target dimension of every tap.
        decoder_embed_dim (int): Decoder width; halved for the first tap
            as officially (64 for stage 1, 128 after). Defaults to 128.
        decoder_depth (int): Blocks per decoder. Defaults to 1.
        decoder_num_heads (int): Heads per decoder. Defaults to 4.
        mlp_ratio (float): MLP ratio. Defaults to 4.
        init_cfg (dict, optional): Initialization config.
    """

    encoder_kinds = ('swin', )

    def __init__(self,
                 in_channels: Sequence[int],
                 grids: Sequence[int],
                 out_channels: Sequence[int],
                 decoder_embed_dim: int = 128,
                 decoder_depth: int = 1,
                 decoder_num_heads: int = 4,
                 mlp_ratio: float = 4.,
                 init_cfg: Optional[Union[List[dict], dict]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        n = len(in_channels)
        for name, value in (('grids', grids), ('out_channels', out_channels)):
            if not isinstance(value, (list, tuple)) or len(value) != n:
                raise ValueError(f'`{name}` must have one entry per tap '
                                 f'({n} `in_channels`), got {value!r}')
        self.in_channels = list(in_channels)
        self.grids = list(grids)
        self.out_channels = list(out_channels)
        self.decoders = ModuleList([
            LocalMIMSwinDecoder(
                in_channels=c,
                grid=g,
                out_channels=o,
                decoder_embed_dim=decoder_embed_dim //
                2 if k == 0 else decoder_embed_dim,
                decoder_depth=decoder_depth,
                decoder_num_heads=decoder_num_heads,
                mlp_ratio=mlp_ratio) for k, (c, g, o) in enumerate(
                    zip(self.in_channels, self.grids, self.out_channels))
        ])

    def forward(self, latents: Sequence[torch.Tensor],
                mask: torch.Tensor) -> List[torch.Tensor]:
        """Decode every tap; returns (B, grid_k^2, out_channels[k]) each."""
        if len(latents) != len(self.decoders):
            raise ValueError(f'got {len(latents)} tap features for '
                             f'{len(self.decoders)} decoders')
        return [dec(x, mask) for dec, x in zip(self.decoders, latents)]

    def reconstruction_loss(self, head: nn.Module,
                            latents: Sequence[torch.Tensor], ids_restore: None,
                            mask: torch.Tensor,
                            inputs: torch.Tensor) -> Dict[str, torch.Tensor]:
        """``loss_scale{k}`` of every tap, decoded by the shared mask."""
        return head.loss(self(latents, mask), inputs, mask)

    def check_fits(self, head: nn.Module, encoder: EncoderGrid,
                   where: str) -> None:
        """One decoder per tap of its width and grid, the head's target
        grids on the taps' grids."""
        check_localmim_head(head, head.scales, self.out_channels, encoder,
                            where)
        if self.in_channels != list(encoder.widths):
            raise ValueError(f'`neck.in_channels`={self.in_channels} must be '
                             f'the tap widths {list(encoder.widths)}{where}')
        if self.grids != list(encoder.grids):
            raise ValueError(f'`neck.grids`={self.grids} must be the tap '
                             f'grids {list(encoder.grids)}{where}')
        cells = encoder.img_size[0] // encoder.patch_size
        targets = [int(cells * s) for s in head.scales]
        if targets != self.grids:
            raise ValueError(f'`head.scales`={head.scales} give target grids '
                             f'{targets} (mask grid {cells} x scale), not the '
                             f'tap grids {self.grids}{where}')
