# Copyright (c) OpenMMLab. All rights reserved.
from typing import Dict, List

import torch
from mmpretrain.models import MAE
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ..utils.decoder import check_decoder, decoder_loss
from ..utils.masked_vit import masked_vit_grid


@MODELS.register_module()
class PRMIM(MAE):
    """PR-MIM: MAE with partial reconstruction of the masked tokens.

    Implementation of `PR-MIM: Delving Deeper into Partial Reconstruction in
    Masked Image Modeling <https://arxiv.org/abs/2411.15746>`_.

    The encoder is MAE's (:class:`MAEViT`); the neck is a
    :class:`PRMIMPretrainDecoder` that decodes only part of the masked tokens
    and reconstructs the thrown ones without attention; the head is a
    :class:`PRMIMPretrainHead` that supervises kept and thrown tokens.

    The constructor takes the arguments of :class:`MAE`; the decoder checks
    at build time that it fits the encoder (:func:`check_decoder`). Any
    decoder works through :func:`decoder_loss`: with MAE's own decoder and
    head this is MAE.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        check_decoder(self.neck, self.head, masked_vit_grid(self.backbone))

    def loss(self, inputs: torch.Tensor, data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """The forward function in training.

        Args:
            inputs (torch.Tensor): The input images.
            data_samples (List[DataSample]): All elements required
                during the forward function.

        Returns:
            Dict[str, torch.Tensor]: ``loss_kept`` and, when thrown tokens
            are supervised, ``loss_thrown`` (their sum is the total loss),
            plus the per-token means ``mse_kept`` / ``mse_thrown``.
        """
        latent, mask, ids_restore = self.backbone(inputs)
        return decoder_loss(self.neck, self.head, latent, ids_restore, mask,
                            inputs)
