# Copyright (c) OpenMMLab. All rights reserved.
from typing import Dict, List

import torch
from mmpretrain.models import BaseSelfSupervisor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ..backbones.localmim_swin import LocalMIMSwin
from ..backbones.localmim_vit import LocalMIMViT
from ..utils.decoder import check_decoder, decoder_loss


@MODELS.register_module()
class LocalMIM(BaseSelfSupervisor):
    """LocalMIM: masked image modeling with local multi-scale reconstruction.

    Implementation of `Masked Image Modeling with Local Multi-Scale
    Reconstruction <https://arxiv.org/abs/2303.05251>`_.

    An MAE-style masked encoder (:class:`LocalMIMViT`) exposes several
    layers (officially ``[1, 3, L-3, L-1]``), each through its own
    LayerNorm. A light decoder per tap (:class:`LocalMIMNeck`) predicts a
    target at its own scale -- the lower the layer, the finer the scale
    (x4, x2, x1, x1/2 of the patch grid) -- and :class:`LocalMIMHead`
    computes HOG or normalised-pixel targets, the per-scale loss masks and
    the equally weighted losses. Gradients flow end to end (deep
    supervision, no stop-gradient). With :class:`LocalMIMSwin` (one mask
    per batch on 32-px cells) the taps are the stage outputs after patch
    merging, decoded by :class:`LocalMIMSwinNeck` (x4, x2, x1, x1 of the
    mask grid).

    The constructor takes the arguments of
    :class:`mmpretrain.models.BaseSelfSupervisor`; the decoder checks at
    build time that it fits the encoder's taps (:func:`check_decoder`): one
    decoder and one scale per tap, the same grid and width, the neck's
    ``out_channels`` equal to the head's target dims and an image size
    divisible by the largest cell.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.backbone, (LocalMIMViT, LocalMIMSwin)):
            raise TypeError('LocalMIM needs a multi-tap encoder '
                            '(`backbone.type`=\'LocalMIMViT\' or '
                            '\'LocalMIMSwin\'), got '
                            f'{type(self.backbone).__name__}')
        check_decoder(self.neck, self.head, self.backbone.decoder_grid())

    def extract_feat(self, inputs: torch.Tensor):
        """Un-masked features of the tapped layers (last tap last)."""
        return self.backbone(inputs, mask=None)

    def loss(self, inputs: torch.Tensor, data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """The forward function in training.

        Args:
            inputs (torch.Tensor): The input images.
            data_samples (List[DataSample]): All elements required
                during the forward function.

        Returns:
            Dict[str, torch.Tensor]: ``loss_scale{k}`` for every scale,
            finest first; their sum is the total loss.
        """
        latents, mask, ids_restore = self.backbone(inputs)
        return decoder_loss(self.neck, self.head, latents, ids_restore, mask,
                            inputs)
