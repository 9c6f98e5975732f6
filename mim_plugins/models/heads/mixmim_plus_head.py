# Copyright (c) OpenMMLab. All rights reserved.
import torch
from mmpretrain.models.heads import MixMIMPretrainHead
from mmpretrain.registry import MODELS

from ..utils.checks import check_range


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
