# Copyright (c) OpenMMLab. All rights reserved.
from typing import Dict, Optional

import torch
from mmpretrain.models.heads import MixMIMPretrainHead
from mmpretrain.registry import MODELS

from ..utils.checks import check_range
from .prmim_head import PRMIMHeadMixin


@MODELS.register_module()
class MixMIMPlusPretrainHead(MixMIMPretrainHead):
    """MixMIM unmixing head for any number of image channels.

    Implementation of `MixMAE: Mixed and Masked Autoencoder for Efficient
    Pretraining of Hierarchical Vision Transformers
    <https://arxiv.org/abs/2205.13137>`_.

    Same loss as :class:`mmpretrain.models.heads.MixMIMPretrainHead`
    (unmix the two decoder branches, MSE against the per-patch normalized
    image on every token), plus ``in_channels`` (mmpretrain's MixMIM head
    always patchifies 3 channels) and a public :meth:`unmix`.

    Args:
        loss (dict): Config of the reconstruction loss.
        norm_pix (bool): Normalize each target patch. Defaults to False.
        patch_size (int): Side of the region one token reconstructs; the
            :class:`MixMIMPlus` algorithm sets it to the neck's
            ``encoder_stride``. Defaults to 16.
        in_channels (int): Image channels. Defaults to 3.
    """

    def __init__(self,
                 loss: dict,
                 norm_pix: bool = False,
                 patch_size: int = 16,
                 in_channels: int = 3) -> None:
        check_range('patch_size', patch_size, 1, integer=True)
        check_range('in_channels', in_channels, 1, integer=True)
        super().__init__(loss=loss, norm_pix=norm_pix, patch_size=patch_size)
        self.in_channels = in_channels

    @staticmethod
    def unmix(x_rec: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Assemble one full prediction per image from the two branches.

        Image ``i`` occupies the ``mask == 0`` cells of mixed sample ``i``
        and the ``mask == 1`` cells of mixed sample ``B-1-i``. Branch 1 of
        sample ``i`` predicts its ``mask == 1`` cells; branch 2 of sample
        ``B-1-i`` predicts its ``mask == 0`` cells.

        Args:
            x_rec (torch.Tensor): Decoder output, (2B, L, D).
            mask (torch.Tensor): Mixing mask, broadcastable to (B, L, 1).

        Returns:
            torch.Tensor: (B, L, D) predictions of the B original images.
        """
        if x_rec.shape[0] % 2:
            raise ValueError('the decoder output must hold two branches '
                             f'(even batch), got {x_rec.shape[0]} rows')
        half = x_rec.shape[0] // 2
        x1_rec, x2_rec = x_rec[:half], x_rec[half:]
        return x1_rec * mask + x2_rec.flip(0) * (1 - mask)

    def loss(self, x_rec: torch.Tensor, target: torch.Tensor,
             mask: torch.Tensor) -> torch.Tensor:
        """Unmix and compute the reconstruction loss on all tokens.

        Args:
            x_rec (torch.Tensor): Decoder output, (2B, L, D).
            target (torch.Tensor): Original images, (B, C, H, W).
            mask (torch.Tensor): Mixing mask, (1, L, 1).

        Returns:
            torch.Tensor: The reconstruction loss.
        """
        target = self.construct_target(target)
        return self.loss_module(self.unmix(x_rec, mask), target)


@MODELS.register_module()
class PRMIMMixMIMPretrainHead(PRMIMHeadMixin, MixMIMPlusPretrainHead):
    """MixMIM unmixing head supervising kept and thrown tokens (PR-MIM).

    Pairs with :class:`PRMIMMixMIMPretrainDecoder`. The two branches are
    unmixed as in :class:`MixMIMPlusPretrainHead`; a token of image ``i``
    is "kept" or "thrown" as it was in the branch that reconstructs it. The
    loss is :class:`PRMIMPretrainHead`'s,
    ``(sum_kept e + w * sum_thrown e) / (n_kept + n_thrown)`` over every
    token, returned as ``loss_kept`` / ``loss_thrown`` plus the detached
    means ``mse_kept`` / ``mse_thrown``. Without thrown tokens (``kept_mask``
    None), ``loss_kept`` is exactly :class:`MixMIMPlusPretrainHead`'s loss.

    Args:
        loss (dict): Config of the per-token reconstruction loss.
        norm_pix (bool): Normalize each target patch. Defaults to False.
        patch_size (int): Side of the region one token reconstructs.
            Defaults to 16.
        in_channels (int): Image channels. Defaults to 3.
        thrown_loss_weight (float): Weight of a thrown token relative to a
            kept one, >= 0. Defaults to 1.0.
    """

    neck_type = "'PRMIMMixMIMPretrainDecoder'"

    def loss(
            self,
            x_rec: torch.Tensor,
            target: torch.Tensor,
            mask: torch.Tensor,
            kept_mask: Optional[torch.Tensor] = None,
            thrown_mask: Optional[torch.Tensor] = None
    ) -> Dict[str, torch.Tensor]:
        """Unmix and compute the kept and thrown losses.

        Args:
            x_rec (torch.Tensor): Decoder output, (2B, L, D).
            target (torch.Tensor): Original images, (B, C, H, W).
            mask (torch.Tensor): Mixing mask, (1, L, 1).
            kept_mask (torch.Tensor, optional): (2, L) per-branch decoded
                reconstructed tokens; None when every token was decoded.
            thrown_mask (torch.Tensor, optional): (2, L) per-branch thrown
                tokens to supervise; None supervises none.

        Returns:
            Dict[str, torch.Tensor]: ``loss_kept`` and ``mse_kept``, plus
            ``loss_thrown`` and ``mse_thrown`` when thrown tokens are
            supervised.
        """
        pred = self.unmix(x_rec, mask)
        target = self.construct_target(target)
        if kept_mask is None:
            loss = self.loss_module(pred, target)
            return dict(loss_kept=loss, mse_kept=loss.detach())
        B = pred.shape[0]
        mixed = mask.reshape(1, -1).to(pred.dtype)

        def per_image(branch_mask: torch.Tensor) -> torch.Tensor:
            # a token of an image takes the state it had in the branch
            # that reconstructs it (branch 1 where mask == 1)
            m = branch_mask[0:1] * mixed + branch_mask[1:2] * (1 - mixed)
            return m.expand(B, -1)

        return self.kept_thrown_losses(
            pred, target, per_image(kept_mask),
            None if thrown_mask is None else per_image(thrown_mask))
