# Copyright (c) OpenMMLab. All rights reserved.
from typing import Dict, List, Optional, Union

import torch
from mmpretrain.models import MixMIM, MixMIMPretrainTransformer
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import nn

from ..backbones.mixmim_vit import (MixMIMViT, check_mixing_ratios,
                                    check_pairing_batch)
from ..heads.mixmim_plus_head import MixMIMPlusPretrainHead
from ..utils.decoder import (ENCODER_KINDS, EncoderGrid, check_decoder,
                             decoder_loss)


def _builds(cfg: Union[dict, nn.Module], cls: type) -> bool:
    """Whether a module config (or a built module) is an instance of cls."""
    if isinstance(cfg, nn.Module):
        return isinstance(cfg, cls)
    obj_type = cfg['type']
    if not isinstance(obj_type, type):
        obj_type = MODELS.get(obj_type)  # None if unknown: MODELS raises
    return isinstance(obj_type, type) and issubclass(obj_type, cls)


def hierarchical_grid(backbone: MixMIMPretrainTransformer) -> EncoderGrid:
    """The decoder grid of mmpretrain's hierarchical MixMIM encoder.

    Its ``num_layers - 1`` patch mergings halve the patch grid, so one
    decoder token is one mixing cell. ``random_masking`` mixes
    ``int(L * (mask_ratio + U(0, range_mask_ratio)))`` of the ``L`` cells
    (no clamping), so a branch reconstructs at least ``min(int(L *
    mask_ratio), L - int(L * (mask_ratio + range_mask_ratio)))`` of them.
    """
    mask_ratio, extra = backbone.mask_ratio, backbone.range_mask_ratio
    check_mixing_ratios(mask_ratio, extra, 'backbone.')
    patch = backbone.patch_embed.projection.stride[0]
    ph, pw = backbone.patch_resolution
    num_merges = len(backbone.layers) - 1
    down = 2**num_merges
    if ph % down or pw % down:
        raise ValueError(
            f'`backbone.img_size` ({ph * patch}x{pw * patch} px) must be '
            f'divisible by the mixing cell ({patch * down} px: patch '
            f'{patch} x 2^{num_merges} mergings)')
    gh, gw = ph // down, pw // down
    L = gh * gw
    least_mixed = int(L * mask_ratio)
    if least_mixed < 1:
        # branch 1 would reconstruct nothing, whatever throw_ratio
        raise ValueError(
            f'`backbone.mask_ratio`={mask_ratio} mixes {least_mixed} of '
            f'the {L} cells: use 1/{L} <= mask_ratio < 1 so that each '
            'branch reconstructs a cell')
    return EncoderGrid(
        grids=(gh, ),
        widths=(backbone.num_features, ),
        patch_size=patch * down,
        img_size=(ph * patch, pw * patch),
        in_channels=backbone.patch_embed.projection.in_channels,
        fewest_masked=min(least_mixed, L - int(L * (mask_ratio + extra))),
        masking=f'mask_ratio={mask_ratio}, range_mask_ratio={extra}, '
        f'{L} tokens',
        kind='mixed')


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
        if isinstance(neck, dict) and 'encoder_stride' not in neck:
            # mmpretrain's MixMIM sets the head's patch from it
            raise TypeError(
                'MixMIMPlus needs a decoder of both mixed branches, set by '
                f'`neck.encoder_stride`: `neck.type`={ENCODER_KINDS["mixed"]}'
                f', got {neck.get("type")!r} without `encoder_stride`')
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
        check_decoder(self.neck, self.head, self._decoder_grid())

    def _decoder_grid(self) -> EncoderGrid:
        """The grid the decoder reconstructs (:func:`hierarchical_grid`
        for mmpretrain's encoder, :meth:`MixMIMViT.decoder_grid`)."""
        if isinstance(self.backbone, MixMIMViT):
            return self.backbone.decoder_grid()
        if isinstance(self.backbone, MixMIMPretrainTransformer):
            return hierarchical_grid(self.backbone)
        raise TypeError('MixMIMPlus needs a mixing backbone '
                        "('MixMIMPretrainTransformer' or 'MixMIMViT'), "
                        f'got {type(self.backbone).__name__}')

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
        latent, mask = self.backbone(inputs)
        return decoder_loss(self.neck, self.head, latent, None, mask, inputs)
