# Copyright (c) OpenMMLab. All rights reserved.
from typing import Dict, Tuple

import torch
from mmpretrain.registry import MODELS
from torch import nn

from .mixmim_plus_neck import MixMIMPlusPretrainDecoder
from .prmim_neck import PartialReconstructionMixin


@MODELS.register_module()
class PRMIMMixMIMPretrainDecoder(PartialReconstructionMixin,
                                 MixMIMPlusPretrainDecoder):
    """MixMIM dual-branch decoder with PR-MIM partial reconstruction.

    Implementation of `PR-MIM: Delving Deeper into Partial Reconstruction in
    Masked Image Modeling <https://arxiv.org/abs/2411.15746>`_ applied to
    `MixMAE <https://arxiv.org/abs/2205.13137>`_.

    MixMIM decodes every mixed sample twice: branch 1 keeps the encoder
    tokens of the ``mask == 0`` cells and reconstructs the ``mask == 1``
    cells, branch 2 the other way round. Here each branch decodes only its
    visible tokens and ``num_masked - num_thrown`` of the tokens it
    reconstructs ("kept", chosen by furthest sampling seeded by the branch's
    visible cells, see :class:`PRMIMPretrainDecoder`), where
    ``num_thrown = int(num_patches * throw_ratio)``. The thrown tokens are
    reconstructed by the same attention-free progressive path. Both branches
    decode ``num_patches - num_thrown`` tokens, so they still share one
    batch. The mixing mask is shared by the batch, so the selection is too.

    Works with both MixMIM encoders: the plain-ViT :class:`MixMIMViT` (one
    decoded token per patch) and the hierarchical
    ``MixMIMPretrainTransformer``, whose decoder works on the grid of 32-px
    cells (7x7 for MixMIM-B at 224 px), every token a whole mixing cell.
    The grid side is the square root of ``num_patches``; :class:`MixMIMPlus`
    checks it against the encoder.

    Args:
        **kwargs: The PR-MIM arguments of
            :class:`PartialReconstructionMixin` (``throw_ratio`` is checked
            against the mixing ratio by :class:`MixMIMPlus`) and those of
            :class:`MixMIMPlusPretrainDecoder` (``num_patches`` a square
            number).
    """

    head_type = 'PRMIMMixMIMPretrainHead'

    def forward(
            self, x: torch.Tensor, mask: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Partially decode both branches.

        Args:
            x (torch.Tensor): Encoder tokens of the mixed images, (B, L, C).
            mask (torch.Tensor): The shared mixing mask, (1, L, 1); 1 where
                the token comes from the batch-flipped partner.

        Returns:
            Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:

            - ``x_rec`` (torch.Tensor): (2B, L, P) predictions in patch
              order, rows as in :class:`MixMIMPlusPretrainDecoder` (first B:
              branch 1, last B: branch 2); thrown tokens hold their
              thrown-path prediction (zeros with ``thrown_path='none'``).
            - ``kept_mask`` (torch.Tensor): (2, L), per branch 1 for the
              reconstructed tokens that went through the decoder.
            - ``thrown_mask`` (torch.Tensor): (2, L), per branch 1 for the
              thrown tokens.
        """
        B, L, _ = x.shape
        if L != self.num_patches:
            raise ValueError(f'the decoder was built for {self.num_patches} '
                             f'tokens (`num_patches`), got {L}')
        # branch 1 sees the mask == 0 cells, branch 2 the mask == 1 cells;
        # the mask is shared by the batch, so is each branch's selection
        mixed = mask.reshape(-1).bool()
        visible = torch.stack([~mixed, mixed])
        in_decoder = torch.cat(
            [self.select_decoded(visible[b:b + 1]) for b in range(2)])

        x = self.decoder_embed(x)
        mask_tokens = self.mask_token.expand(B, L, -1)
        x1 = x * (1 - mask) + mask_tokens * mask
        x2 = x * mask + mask_tokens * (1 - mask)
        tokens = torch.cat([x1, x2], dim=0) + self.decoder_pos_embed

        # rows [0, B) are branch 1, [B, 2B) branch 2
        x_rec = self.decode_partial(tokens,
                                    in_decoder.repeat_interleave(B, dim=0))
        kept_mask = (~visible & in_decoder).to(x_rec.dtype)
        return x_rec, kept_mask, (~in_decoder).to(x_rec.dtype)

    def reconstruction_loss(self, head: nn.Module, latent: torch.Tensor,
                            ids_restore: None, mask: torch.Tensor,
                            inputs: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Partial decoding of both branches and the PR-MIM loss.

        Returns:
            Dict[str, torch.Tensor]: ``loss_kept`` / ``mse_kept`` and, when
            thrown tokens are supervised, ``loss_thrown`` / ``mse_thrown``.
        """
        x_rec, kept_mask, thrown_mask = self(latent, mask)
        if self.num_thrown(latent.shape[1]) == 0:
            # every token decoded: exactly MixMIM's loss
            return head.loss(x_rec, inputs, mask)
        return head.loss(x_rec, inputs, mask, kept_mask,
                         thrown_mask if self.reconstructs_thrown else None)
