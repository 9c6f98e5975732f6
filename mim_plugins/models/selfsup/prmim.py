# Copyright (c) OpenMMLab. All rights reserved.
from typing import Dict, List

import torch
from mmpretrain.models import MAE
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ..utils.checks import check_mae_parts, check_range


@MODELS.register_module()
class PRMIM(MAE):
    """PR-MIM: MAE with partial reconstruction of the masked tokens.

    Implementation of `PR-MIM: Delving Deeper into Partial Reconstruction in
    Masked Image Modeling <https://arxiv.org/abs/2411.15746>`_.

    The encoder is MAE's (:class:`MAEViT`); the neck is a
    :class:`PRMIMPretrainDecoder` that decodes only part of the masked tokens
    and reconstructs the thrown ones without attention; the head is a
    :class:`PRMIMPretrainHead` that supervises kept and thrown tokens.

    The constructor takes the arguments of :class:`MAE` and checks, at build
    time, that the neck's ``throw_ratio`` fits the backbone's
    ``mask_ratio`` (``0 <= throw_ratio < mask_ratio`` and at least one kept
    masked token) and that ``k`` does not exceed the number of decoded patch
    tokens.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._check_parts()

    def _check_parts(self) -> None:
        """Raise ``ValueError``/``TypeError`` on an inconsistent config."""
        neck, head = self.neck, self.head
        if not (hasattr(neck, 'throw_ratio')
                and hasattr(neck, 'reconstructs_thrown')):
            raise TypeError('PRMIM needs a partial-reconstruction neck '
                            '(`neck.type`=\'PRMIMPretrainDecoder\'), got '
                            f'{type(neck).__name__}')
        if not hasattr(head, 'thrown_loss_weight'):
            raise TypeError('PRMIM needs a head that supervises thrown '
                            'tokens (`head.type`=\'PRMIMPretrainHead\'), got '
                            f'{type(head).__name__}')
        mask_ratio = self.backbone.mask_ratio
        num_patches = self.backbone.num_patches
        # MAEViT accepts any ratio; 0 or 1 leaves nothing to reconstruct
        check_range(
            'backbone.mask_ratio',
            mask_ratio,
            0,
            1,
            low_open=True,
            high_open=True)
        check_mae_parts(self.backbone, neck, head)
        if not 0 <= neck.throw_ratio < mask_ratio:
            raise ValueError(
                '`throw_ratio` must satisfy 0 <= throw_ratio < mask_ratio '
                f'(mask_ratio={mask_ratio}), got {neck.throw_ratio}')
        num_visible = int(num_patches * (1 - mask_ratio))
        num_thrown = neck.num_thrown(num_patches)
        num_kept = num_patches - num_visible - num_thrown
        if num_kept < 1:
            raise ValueError(
                f'`throw_ratio`={neck.throw_ratio} leaves no kept masked '
                f'token ({num_patches} patches, {num_visible} visible, '
                f'{num_thrown} thrown); lower throw_ratio below mask_ratio')
        num_decoded = num_visible + num_kept
        if num_thrown > 0 and neck.reconstructs_thrown \
                and neck.k > num_decoded:
            raise ValueError(
                f'`k`={neck.k} exceeds the {num_decoded} decoded patch '
                'tokens a thrown token can mix; use 1 <= k <= '
                f'{num_decoded}')

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
        pred, kept_mask, thrown_mask = self.neck(latent, ids_restore)
        supervise_thrown = self.neck.reconstructs_thrown and \
            self.neck.num_thrown(ids_restore.shape[1]) > 0
        return self.head.loss(pred, inputs, kept_mask,
                              thrown_mask if supervise_thrown else None)
