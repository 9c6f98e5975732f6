# Copyright (c) OpenMMLab. All rights reserved.
from typing import Dict, List, Optional, Union

import torch
from mmpretrain.models.necks import MixMIMPretrainDecoder
from mmpretrain.registry import MODELS
from torch import nn

from ..utils.checks import check_choice, check_divisible, check_square
from ..utils.decoder import EncoderGrid, ReconstructionDecoder, check_tokens

DECODER_INIT_MODES = ('official', 'mmpretrain')


@MODELS.register_module()
class MixMIMPlusPretrainDecoder(ReconstructionDecoder, MixMIMPretrainDecoder):
    """MixMIM dual-branch decoder with the official initialization.

    Implementation of `MixMAE: Mixed and Masked Autoencoder for Efficient
    Pretraining of Hierarchical Vision Transformers
    <https://arxiv.org/abs/2205.13137>`_.

    Same forward as :class:`mmpretrain.models.necks.MixMIMPretrainDecoder`
    (two mask-token-filled branches concatenated on the batch), with two
    differences:

    - the prediction layer outputs ``encoder_stride**2 * in_chans`` values
      (mmpretrain hard-codes 3 channels), so single-channel data works;
    - ``init_mode='official'`` re-initializes **every** ``nn.Linear`` of the
      decoder with xavier-uniform (bias 0) and every LayerNorm to (1, 0), as
      the official ``Sense-X/MixMIM`` code does. ``'mmpretrain'`` keeps
      mmpretrain 1.2's init, where only the FFN Linears are xavier and the
      embedding, attention and prediction Linears keep PyTorch's default.

    Args:
        num_patches (int): Number of decoded tokens, a square number (the
            sin-cos position embedding is 2-D). Defaults to 49.
        patch_size (int): Kept for the parent signature. Defaults to 16.
        in_chans (int): Channels of the reconstructed image. Defaults to 3.
        embed_dim (int): Encoder output dimension. Defaults to 1024.
        encoder_stride (int): Side in pixels of the region one token
            reconstructs (32 for the hierarchical encoder, the patch size for
            a plain ViT). Defaults to 32.
        decoder_embed_dim (int): Decoder width. Defaults to 512.
        decoder_depth (int): Number of decoder blocks. Defaults to 8.
        decoder_num_heads (int): Decoder attention heads. Defaults to 16.
        mlp_ratio (int): FFN ratio of the decoder blocks. Defaults to 4.
        norm_cfg (dict): Normalization layer. Defaults to LayerNorm.
        init_mode (str): ``'official'`` or ``'mmpretrain'``, see above.
            Defaults to ``'official'``.
        init_cfg (dict | list[dict], optional): Initialization config.
    """

    encoder_kinds = ('mixed', )

    def __init__(self,
                 num_patches: int = 49,
                 patch_size: int = 16,
                 in_chans: int = 3,
                 embed_dim: int = 1024,
                 encoder_stride: int = 32,
                 decoder_embed_dim: int = 512,
                 decoder_depth: int = 8,
                 decoder_num_heads: int = 16,
                 mlp_ratio: int = 4,
                 norm_cfg: dict = dict(type='LN', eps=1e-6),
                 init_mode: str = 'official',
                 init_cfg: Optional[Union[List[dict], dict]] = None) -> None:
        check_choice('init_mode', init_mode, DECODER_INIT_MODES)
        # the 2-D sin-cos position embedding needs a square grid
        check_square('num_patches', num_patches)
        check_divisible('decoder_embed_dim', decoder_embed_dim,
                        decoder_num_heads, 'decoder_num_heads')
        super().__init__(
            num_patches=num_patches,
            patch_size=patch_size,
            in_chans=in_chans,
            embed_dim=embed_dim,
            encoder_stride=encoder_stride,
            decoder_embed_dim=decoder_embed_dim,
            decoder_depth=decoder_depth,
            decoder_num_heads=decoder_num_heads,
            mlp_ratio=mlp_ratio,
            norm_cfg=norm_cfg,
            init_cfg=init_cfg)
        self.init_mode = init_mode
        self.in_chans = in_chans
        self.encoder_stride = encoder_stride
        # the parent predicts encoder_stride**2 * 3 whatever in_chans is
        self.decoder_pred = nn.Linear(decoder_embed_dim,
                                      encoder_stride**2 * in_chans)

    def init_weights(self) -> None:
        """Position embedding, mask token, then the chosen Linear init."""
        super().init_weights()
        if self.init_mode == 'official':
            # Sense-X/MixMIM: model.apply(_init_weights) over the decoder too
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.xavier_uniform_(m.weight)
                    if m.bias is not None:
                        nn.init.constant_(m.bias, 0)
                elif isinstance(m, nn.LayerNorm):
                    nn.init.constant_(m.weight, 1.0)
                    nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Decode both branches.

        Args:
            x (torch.Tensor): Encoder tokens of the mixed images, (B, L, C).
            mask (torch.Tensor): The shared mixing mask, (1, L, 1); 1 where
                the token comes from the batch-flipped partner.

        Returns:
            torch.Tensor: Predictions of shape (2B, L, stride**2 * in_chans):
            the first B rows reconstruct the ``mask == 1`` cells of each
            image, the last B the ``mask == 0`` cells of its partner.
        """
        if x.shape[1] != self.num_patches:
            raise ValueError(f'the decoder was built for {self.num_patches} '
                             f'tokens (`num_patches`), got {x.shape[1]}')
        return super().forward(x, mask)

    def reconstruction_loss(self, head: nn.Module, latent: torch.Tensor,
                            ids_restore: None, mask: torch.Tensor,
                            inputs: torch.Tensor) -> Dict[str, torch.Tensor]:
        """MixMIM's loss: decode both branches, unmix, compare (``loss``)."""
        return dict(loss=head.loss(self(latent, mask), inputs, mask))

    def check_grid(self, head: nn.Module, encoder: EncoderGrid,
                   where: str) -> None:
        """Tokens and width, and a head predicting the region one encoder
        token covers."""
        check_tokens(self, encoder, where)
        if head.patch_size != encoder.patch_size:
            raise ValueError(f'`neck.encoder_stride`={head.patch_size} must '
                             f'be the {encoder.patch_size}-px region one '
                             f'encoder output token covers{where}')
