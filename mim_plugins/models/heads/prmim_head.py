# Copyright (c) OpenMMLab. All rights reserved.
from typing import Dict, Optional

import torch
from mmpretrain.models import MAEPretrainHead
from mmpretrain.registry import MODELS

from ..utils.checks import check_range
from ..utils.decoder import DecoderHead


class PRMIMHeadMixin(DecoderHead):
    """Kept and thrown losses of PR-MIM, for a pixel reconstruction head.

    The one base of the PR-MIM heads (:class:`PRMIMPretrainHead` and the
    MixMIM one): it owns ``thrown_loss_weight`` and splits the loss into
    its kept and thrown parts (:meth:`kept_thrown_losses`). The host head
    (listed after the mixin) provides ``loss_module``.

    Args:
        thrown_loss_weight (float): Weight of a thrown token relative to a
            kept one, >= 0. Defaults to 1.0.
        **kwargs: The arguments of the host head.
    """

    neck_type = "'PRMIMPretrainDecoder'"

    def __init__(self, thrown_loss_weight: float = 1.0, **kwargs) -> None:
        check_range('thrown_loss_weight', thrown_loss_weight, 0)
        super().__init__(**kwargs)
        self.thrown_loss_weight = float(thrown_loss_weight)

    def kept_thrown_losses(
            self, pred: torch.Tensor, target: torch.Tensor,
            kept_mask: torch.Tensor,
            thrown_mask: Optional[torch.Tensor]) -> Dict[str, torch.Tensor]:
        """The PR-MIM loss split into its kept and thrown parts.

        ``loss_kept + loss_thrown = (sum_kept e + w * sum_thrown e) /
        (n_kept + n_thrown)``, ``e`` being the per-token error of
        ``loss_module`` (e.g. ``PixelReconstructionLoss``) and ``w`` the
        ``thrown_loss_weight``.

        Args:
            pred (torch.Tensor): ``(B, L, P)`` predictions in patch order.
            target (torch.Tensor): ``(B, L, P)`` targets.
            kept_mask (torch.Tensor): ``(B, L)``, 1 for decoded masked
                tokens.
            thrown_mask (torch.Tensor, optional): ``(B, L)``, 1 for thrown
                tokens to supervise; None (or all zero) supervises none.

        Returns:
            Dict[str, torch.Tensor]: ``loss_kept`` and ``mse_kept``, plus
            ``loss_thrown`` and ``mse_thrown`` when thrown tokens are
            supervised.
        """
        mse_kept = self.loss_module(pred, target, kept_mask)
        n_thrown = 0. if thrown_mask is None else float(thrown_mask.sum())
        if n_thrown == 0:
            return dict(loss_kept=mse_kept, mse_kept=mse_kept.detach())

        mse_thrown = self.loss_module(pred, target, thrown_mask)
        n_kept = float(kept_mask.sum())
        n_total = n_kept + n_thrown
        weight = self.thrown_loss_weight
        return dict(
            loss_kept=mse_kept * (n_kept / n_total),
            loss_thrown=mse_thrown * (weight * n_thrown / n_total),
            mse_kept=mse_kept.detach(),
            mse_thrown=mse_thrown.detach())


@MODELS.register_module()
class PRMIMPretrainHead(PRMIMHeadMixin, MAEPretrainHead):
    """MAE pixel head that supervises kept and thrown masked tokens.

    Implementation of `PR-MIM: Delving Deeper into Partial Reconstruction in
    Masked Image Modeling <https://arxiv.org/abs/2411.15746>`_.

    The loss is the (norm-pix) reconstruction loss averaged over every
    supervised masked token, a thrown token counting ``thrown_loss_weight``
    times:

    ``loss = (sum_kept e + w * sum_thrown e) / (n_kept + n_thrown)``

    where ``e`` is the per-token error of ``loss`` (e.g.
    ``PixelReconstructionLoss``). It is returned as two additive parts,
    ``loss_kept`` and ``loss_thrown`` (mmengine sums every ``loss*`` key),
    plus the detached per-token means ``mse_kept`` / ``mse_thrown`` for
    logging. Without thrown tokens to supervise, ``loss_kept`` is exactly
    :class:`MAEPretrainHead`'s loss over the kept tokens.

    Args:
        loss (dict): Config of the per-token reconstruction loss.
        norm_pix (bool): Whether to normalize each target patch.
            Defaults to False.
        patch_size (int): Patch size. Defaults to 16.
        in_channels (int): Number of input channels. Defaults to 3.
        thrown_loss_weight (float): Weight of a thrown token relative to a
            kept one, >= 0. Defaults to 1.0.
    """

    def loss(
            self,
            pred: torch.Tensor,
            target: torch.Tensor,
            kept_mask: torch.Tensor,
            thrown_mask: Optional[torch.Tensor] = None
    ) -> Dict[str, torch.Tensor]:
        """Generate the losses against the (normalised) image patches.

        Args:
            target (torch.Tensor): The input images ``(B, C, H, W)``.
            pred, kept_mask, thrown_mask: As in :meth:`kept_thrown_losses`.

        Returns:
            Dict[str, torch.Tensor]: See :meth:`kept_thrown_losses`.
        """
        target = self.construct_target(target)
        return self.kept_thrown_losses(pred, target, kept_mask, thrown_mask)
