# Copyright (c) OpenMMLab. All rights reserved.
from typing import Dict, List

import torch
from mmpretrain.models import MAE
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import nn

from ..heads.prmim_head import PRMIMHeadMixin
from ..necks.prmim_neck import PartialReconstructionMixin
from ..utils.checks import check_mae_parts, check_range


def check_prmim_parts(backbone: nn.Module,
                      neck: nn.Module,
                      head: nn.Module,
                      owner: str = 'PRMIM',
                      where: str = '') -> None:
    """Check a PR-MIM decoder and head against an MAE-masked ViT encoder.

    Args:
        backbone (nn.Module): An ``MAEViT``-like encoder (``mask_ratio``,
            ``num_patches``).
        neck (nn.Module): Expected to be a :class:`PRMIMPretrainDecoder`.
        head (nn.Module): Expected to be a :class:`PRMIMPretrainHead`.
        owner (str): Algorithm named in the type errors.
            Defaults to ``'PRMIM'``.
        where (str): Appended to every message to locate the part, e.g.
            ``' (block 2)'``. Defaults to ``''``.

    Raises:
        TypeError: If the neck or head is not a PR-MIM one.
        ValueError: On a value that does not fit the encoder.
    """
    if not isinstance(neck, PartialReconstructionMixin):
        raise TypeError(f'{owner} needs a partial-reconstruction neck '
                        '(`neck.type`=\'PRMIMPretrainDecoder\'), got '
                        f'{type(neck).__name__}{where}')
    if not isinstance(head, PRMIMHeadMixin):
        raise TypeError(f'{owner} needs a head that supervises thrown '
                        'tokens (`head.type`=\'PRMIMPretrainHead\'), got '
                        f'{type(head).__name__}{where}')
    check_mae_parts(backbone, neck, head)
    # MAE masks the same number of patches in every sample
    num_patches, mask_ratio = backbone.num_patches, backbone.mask_ratio
    num_masked = num_patches - int(num_patches * (1 - mask_ratio))
    neck.check_throw(num_masked, f'mask_ratio={mask_ratio}', where)


def prmim_losses(neck: nn.Module, head: nn.Module, latent: torch.Tensor,
                 ids_restore: torch.Tensor,
                 inputs: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Partial decoding and the PR-MIM loss of one encoder output.

    Args:
        neck (nn.Module): A :class:`PRMIMPretrainDecoder`.
        head (nn.Module): A :class:`PRMIMPretrainHead`.
        latent (torch.Tensor): Encoder output ``(B, 1 + V, C)``.
        ids_restore (torch.Tensor): ``(B, L)`` restore ids of the mask.
        inputs (torch.Tensor): The images (reconstruction target).

    Returns:
        Dict[str, torch.Tensor]: The head's ``loss_kept`` / ``mse_kept``
        and, when thrown tokens are supervised, ``loss_thrown`` /
        ``mse_thrown``.
    """
    pred, kept_mask, thrown_mask = neck(latent, ids_restore)
    supervise_thrown = neck.reconstructs_thrown and \
        neck.num_thrown(ids_restore.shape[1]) > 0
    return head.loss(pred, inputs, kept_mask,
                     thrown_mask if supervise_thrown else None)


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
    time, that the parts fit together (:func:`check_prmim_parts`).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # MAEViT accepts any ratio; 0 or 1 leaves nothing to reconstruct
        check_range(
            'backbone.mask_ratio',
            self.backbone.mask_ratio,
            0,
            1,
            low_open=True,
            high_open=True)
        check_prmim_parts(self.backbone, self.neck, self.head)

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
        return prmim_losses(self.neck, self.head, latent, ids_restore, inputs)
