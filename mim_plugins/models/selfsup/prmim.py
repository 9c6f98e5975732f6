# Copyright (c) OpenMMLab. All rights reserved.
from typing import Dict, List

import torch
from mmpretrain.models import MAE
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import nn

from ..utils.checks import check_mae_parts, check_range


def is_prmim_neck(neck: nn.Module) -> bool:
    """Whether ``neck`` is a partial-reconstruction (PR-MIM) decoder."""
    return hasattr(neck, 'throw_ratio') and hasattr(neck,
                                                    'reconstructs_thrown')


def is_prmim_head(head: nn.Module) -> bool:
    """Whether ``head`` supervises kept and thrown tokens (PR-MIM)."""
    return hasattr(head, 'thrown_loss_weight')


def check_prmim_parts(backbone: nn.Module,
                      neck: nn.Module,
                      head: nn.Module,
                      owner: str = 'PRMIM',
                      where: str = '') -> None:
    """Check a PR-MIM decoder and head against a masked ViT encoder.

    Checks the neck/head types, :func:`check_mae_parts`, that
    ``0 <= throw_ratio < mask_ratio`` with at least one kept masked token,
    and that ``k`` does not exceed the number of decoded patch tokens.

    Args:
        backbone (nn.Module): A ``MAEViT``-like encoder (``mask_ratio``,
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
    if not is_prmim_neck(neck):
        raise TypeError(f'{owner} needs a partial-reconstruction neck '
                        '(`neck.type`=\'PRMIMPretrainDecoder\'), got '
                        f'{type(neck).__name__}{where}')
    if not is_prmim_head(head):
        raise TypeError(f'{owner} needs a head that supervises thrown '
                        'tokens (`head.type`=\'PRMIMPretrainHead\'), got '
                        f'{type(head).__name__}{where}')
    mask_ratio = backbone.mask_ratio
    num_patches = backbone.num_patches
    check_mae_parts(backbone, neck, head)
    if not 0 <= neck.throw_ratio < mask_ratio:
        raise ValueError(
            '`throw_ratio` must satisfy 0 <= throw_ratio < mask_ratio '
            f'(mask_ratio={mask_ratio}), got {neck.throw_ratio}{where}')
    num_visible = int(num_patches * (1 - mask_ratio))
    num_thrown = neck.num_thrown(num_patches)
    num_kept = num_patches - num_visible - num_thrown
    if num_kept < 1:
        raise ValueError(
            f'`throw_ratio`={neck.throw_ratio} leaves no kept masked '
            f'token ({num_patches} patches, {num_visible} visible, '
            f'{num_thrown} thrown); lower throw_ratio below mask_ratio'
            f'{where}')
    num_decoded = num_visible + num_kept
    if num_thrown > 0 and neck.reconstructs_thrown and neck.k > num_decoded:
        raise ValueError(f'`k`={neck.k} exceeds the {num_decoded} decoded '
                         'patch tokens a thrown token can mix; use 1 <= k '
                         f'<= {num_decoded}{where}')


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
        # MAEViT accepts any ratio; 0 or 1 leaves nothing to reconstruct
        check_range(
            'backbone.mask_ratio',
            self.backbone.mask_ratio,
            0,
            1,
            low_open=True,
            high_open=True)
        check_prmim_parts(self.backbone, self.neck, self.head, owner='PRMIM')

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
