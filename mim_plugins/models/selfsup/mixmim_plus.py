# Copyright (c) OpenMMLab. All rights reserved.
from typing import Dict, List, Optional, Tuple, Union

import torch
from mmpretrain.models import MixMIM, MixMIMPretrainTransformer
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import nn

from ..backbones.mixmim_vit import MixMIMViT, check_pairing_batch
from ..heads.mixmim_plus_head import MixMIMPlusPretrainHead
from ..heads.prmim_head import PRMIMHeadMixin
from ..necks.prmim_neck import PartialReconstructionMixin
from ..utils.checks import check_mixing_ratios


def _builds(cfg: Union[dict, nn.Module], cls: type) -> bool:
    """Whether a module config (or a built module) is an instance of cls."""
    if isinstance(cfg, nn.Module):
        return isinstance(cfg, cls)
    obj_type = cfg['type']
    if not isinstance(obj_type, type):
        obj_type = MODELS.get(obj_type)  # None if unknown: MODELS raises
    return isinstance(obj_type, type) and issubclass(obj_type, cls)


@MODELS.register_module()
class MixMIMPlus(MixMIM):
    """MixMIM with build-time checks, for hierarchical and plain encoders.

    Implementation of `MixMAE: Mixed and Masked Autoencoder for Efficient
    Pretraining of Hierarchical Vision Transformers
    <https://arxiv.org/abs/2205.13137>`_.

    The training step is :class:`mmpretrain.models.MixMIM`'s (backbone mixes
    and encodes, neck decodes both branches, head unmixes and computes the
    loss). The backbone is either mmpretrain's hierarchical
    ``MixMIMPretrainTransformer`` or the plain-ViT :class:`MixMIMViT`; use
    the plugin's :class:`MixMIMPlusPretrainDecoder` and
    :class:`MixMIMPlusPretrainHead` for the official decoder init and any
    number of channels (``head.in_channels`` defaults to the neck's
    ``in_chans``).

    With a :class:`PRMIMMixMIMPretrainDecoder` neck and a
    :class:`PRMIMMixMIMPretrainHead` (either backbone), each branch decodes
    only part of the tokens it reconstructs and the loss is PR-MIM's,
    returned as ``loss_kept`` / ``loss_thrown``. ``throw_ratio`` is checked
    against the fewest tokens a branch may reconstruct under the backbone's
    masking rule (one decoder token per 32-px cell for the hierarchical
    one, so 24 of the 7x7 tokens for MixMIM-B at ``mask_ratio=0.5``).

    Bad configurations raise at build time (mixing ratio out of (0, 1), an
    image size not divisible by the mixing cell, a decoder built for another
    number of tokens) and an odd per-device batch raises in :meth:`loss`
    (batch-flip pairing would mix the middle image with itself).

    Args:
        backbone (dict): Pre-training backbone config.
        neck (dict): Decoder config, with ``encoder_stride`` (the side in
            pixels of the region one decoded token reconstructs).
        head (dict): Head config.
        pretrained (str, optional): Checkpoint to load. Defaults to None.
        data_preprocessor (dict | nn.Module, optional): Data preprocessor.
        init_cfg (dict, optional): Initialization config.
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: dict,
                 pretrained: Optional[str] = None,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if _builds(head, MixMIMPlusPretrainHead):
            head = dict(head)
            head.setdefault('in_channels', neck.get('in_chans', 3))
        super().__init__(
            backbone=backbone,
            neck=neck,
            head=head,
            pretrained=pretrained,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self._check_parts()

    def _check_parts(self) -> None:
        """Raise ``TypeError``/``ValueError`` on an inconsistent config."""
        backbone, neck, head = self.backbone, self.neck, self.head
        patch = backbone.patch_embed.projection.stride[0]
        if isinstance(backbone, MixMIMViT):
            # one decoder token per patch; the ViT checks its own ratios
            (gh, gw), stride = backbone.patch_resolution, patch
            width = backbone.embed_dims
        elif isinstance(backbone, MixMIMPretrainTransformer):
            check_mixing_ratios(backbone.mask_ratio, backbone.range_mask_ratio,
                                'backbone.')
            (gh, gw), stride = self._hierarchical_grid(patch)
            width = backbone.num_features  # the last stage's
        else:
            raise TypeError('MixMIMPlus needs a mixing backbone '
                            "('MixMIMPretrainTransformer' or 'MixMIMViT'), "
                            f'got {type(backbone).__name__}')
        embed = getattr(neck, 'decoder_embed', None)
        if embed is not None and embed.in_features != width:
            raise ValueError(f'`neck.embed_dim` must be the encoder output '
                             f'width {width}, got {embed.in_features}')
        if getattr(neck, 'num_patches', gh * gw) != gh * gw:
            raise ValueError(f'`neck.num_patches`={neck.num_patches} must be '
                             f'the {gh}x{gw}={gh * gw} encoder tokens')
        if head.patch_size != stride:
            raise ValueError(f'`neck.encoder_stride`={head.patch_size} must '
                             f'be the {stride}-px region one encoder output '
                             'token covers')
        partial_neck = isinstance(neck, PartialReconstructionMixin)
        if isinstance(head, PRMIMHeadMixin) and not partial_neck:
            raise TypeError('a PR-MIM head needs the partial decoder '
                            "(`neck.type`='PRMIMMixMIMPretrainDecoder'), got "
                            f'{type(neck).__name__}')
        if partial_neck and not isinstance(head, PRMIMHeadMixin):
            raise TypeError('the partial decoder needs a head that '
                            'supervises thrown tokens '
                            "(`head.type`='PRMIMMixMIMPretrainHead'), got "
                            f'{type(head).__name__}')
        if partial_neck:
            neck.check_throw(
                self._fewest_reconstructed(gh * gw),
                f'mask_ratio={backbone.mask_ratio}, range_mask_ratio='
                f'{backbone.range_mask_ratio}, {gh * gw} tokens')

    def _hierarchical_grid(self, patch: int) -> Tuple[Tuple[int, int], int]:
        """Decoder token grid and pixel stride of the hierarchical encoder.

        Its ``num_layers - 1`` patch mergings halve the patch grid, so one
        decoder token is one mixing cell.
        """
        ph, pw = self.backbone.patch_resolution
        num_merges = len(self.backbone.layers) - 1
        down = 2**num_merges
        if ph % down or pw % down:
            raise ValueError(
                f'`backbone.img_size` ({ph * patch}x{pw * patch} px) must be '
                f'divisible by the mixing cell ({patch * down} px: patch '
                f'{patch} x 2^{num_merges} mergings)')
        return (ph // down, pw // down), patch * down

    def _fewest_reconstructed(self, num_tokens: int) -> int:
        """The fewest decoder tokens a branch reconstructs.

        ``MixMIMPretrainTransformer.random_masking`` mixes
        ``int(L * (mask_ratio + U(0, range_mask_ratio)))`` of the ``L``
        decoder tokens (one per mixing cell, no clamping), so a branch
        reconstructs at least ``min(int(L * mask_ratio), L - int(L *
        (mask_ratio + range_mask_ratio)))`` tokens; :class:`MixMIMViT`
        knows its own rule.
        """
        backbone = self.backbone
        if isinstance(backbone, MixMIMViT):
            return backbone.fewest_reconstructed()
        mask_ratio = backbone.mask_ratio
        least_mixed = int(num_tokens * mask_ratio)
        most_mixed = int(num_tokens * (mask_ratio + backbone.range_mask_ratio))
        if least_mixed < 1:
            # branch 1 would reconstruct nothing, whatever throw_ratio
            raise ValueError(
                f'`backbone.mask_ratio`={mask_ratio} mixes {least_mixed} of '
                f'the {num_tokens} cells: use 1/{num_tokens} <= mask_ratio '
                '< 1 so that each branch reconstructs a cell')
        return min(least_mixed, num_tokens - most_mixed)

    def loss(self, inputs: torch.Tensor, data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """The forward function in training.

        Args:
            inputs (torch.Tensor): The input images, (B, C, H, W), B even.
            data_samples (List[DataSample]): All elements required
                during the forward function.

        Returns:
            Dict[str, torch.Tensor]: A dictionary of loss components.
        """
        check_pairing_batch(inputs.shape[0])
        if not isinstance(self.neck, PartialReconstructionMixin):
            return super().loss(inputs, data_samples, **kwargs)
        latent, mask = self.backbone(inputs)
        x_rec, kept_mask, thrown_mask = self.neck(latent, mask)
        if self.neck.num_thrown(latent.shape[1]) == 0:
            # every token decoded: exactly MixMIM's loss
            return self.head.loss(x_rec, inputs, mask)
        return self.head.loss(
            x_rec, inputs, mask, kept_mask,
            thrown_mask if self.neck.reconstructs_thrown else None)
