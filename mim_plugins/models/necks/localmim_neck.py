# Copyright (c) OpenMMLab. All rights reserved.
from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule, ModuleList
from mmpretrain.models import MAEPretrainDecoder
from mmpretrain.models.backbones.vision_transformer import \
    TransformerEncoderLayer
from mmpretrain.models.utils import (LayerNorm2d,
                                     build_2d_sincos_position_embedding)
from mmpretrain.registry import MODELS
from torch import nn

from ..utils.checks import check_divisible, check_square

# Scale of a decoder's output grid relative to the patch grid.
LOCALMIM_SCALES = (4, 2, 1, 0.5)


def check_scales(scales: Sequence[float], field: str = 'scales') -> List:
    """Validate LocalMIM output scales (each one of 4, 2, 1, 0.5)."""
    if not isinstance(scales, (list, tuple)) or len(scales) == 0 or any(
            isinstance(s, bool) or s not in LOCALMIM_SCALES for s in scales):
        raise ValueError(f'`{field}` must be a non-empty list of values in '
                         f'{list(LOCALMIM_SCALES)}, got {scales!r}')
    return list(scales)


@MODELS.register_module()
class LocalMIMDecoder(MAEPretrainDecoder):
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


@MODELS.register_module()
class LocalMIMNeck(BaseModule):
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


@MODELS.register_module()
class LocalMIMSwinDecoder(BaseModule):
    """One LocalMIM decoder for a hierarchical (Swin) tap.

    Implementation of `Masked Image Modeling with Local Multi-Scale
    Reconstruction <https://arxiv.org/abs/2303.05251>`_.

    The tap already lies on its target grid, so there is no scale head
    (official ``ViT_Decoder``): a linear embedding of the visible tokens,
    a learned mask token at the masked ones, fixed 2-D sin-cos positions
    (no cls token), transformer blocks with global attention over the whole
    grid, LayerNorm and a linear layer to the target dimension.

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
        super().__init__(init_cfg=init_cfg)
        self.grid = grid
        self.out_channels = out_channels
        D = decoder_embed_dim
        self.decoder_embed = nn.Linear(in_channels, D)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, D))
        self.decoder_pos_embed = nn.Parameter(
            torch.zeros(1, grid * grid, D), requires_grad=False)
        self.decoder_blocks = ModuleList([
            TransformerEncoderLayer(
                D,
                decoder_num_heads,
                int(mlp_ratio * D),
                qkv_bias=True,
                norm_cfg=norm_cfg) for _ in range(decoder_depth)
        ])
        self.decoder_norm = build_norm_layer(norm_cfg, D)[1]
        self.decoder_pred = nn.Linear(D, out_channels)

    def init_weights(self) -> None:
        """Fixed sin-cos positions and the mask token as in MAE."""
        super().init_weights()
        pos = build_2d_sincos_position_embedding(
            self.grid, self.decoder_pos_embed.shape[-1], cls_token=False)
        self.decoder_pos_embed.data.copy_(pos.float())
        torch.nn.init.normal_(self.mask_token, std=.02)

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
        full = self.mask_token.to(tokens.dtype).expand(B,
                                                       self.grid * self.grid,
                                                       -1).clone()
        full[:, visible] = tokens
        x = full + self.decoder_pos_embed
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))


@MODELS.register_module()
class LocalMIMSwinNeck(BaseModule):
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
