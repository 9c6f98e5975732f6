# Copyright (c) OpenMMLab. All rights reserved.
from typing import Dict, List, Optional, Tuple, Union

import torch
from mmpretrain.models import MixMIM, MixMIMTransformer
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import nn

from ..backbones.mixmim_vit import check_pairing_batch
from .prmim import is_prmim_head, is_prmim_neck


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
        head = dict(head)
        if head.get('type') in ('MixMIMPlusPretrainHead',
                                'mmpretrain.MixMIMPlusPretrainHead',
                                'PRMIMMixMIMPretrainHead',
                                'mmpretrain.PRMIMMixMIMPretrainHead'):
            head.setdefault('in_channels', neck.get('in_chans', 3))
        super().__init__(
            backbone=backbone,
            neck=neck,
            head=head,
            pretrained=pretrained,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self._check_parts()

    def _decoder_grid(self) -> Tuple[Tuple[int, int], int]:
        """Token grid the decoder sees and the pixel stride of one token."""
        backbone = self.backbone
        ph, pw = backbone.patch_resolution
        patch = backbone.patch_embed.projection.stride[0]
        if hasattr(backbone, 'cell_resolution'):  # MixMIMViT
            return (ph, pw), patch
        # hierarchical: (num_layers - 1) patch mergings halve the grid
        down = 2**(len(backbone.layers) - 1)
        if ph % down or pw % down:
            raise ValueError(
                f'`backbone.img_size` ({ph * patch}x{pw * patch} px) must be '
                f'divisible by the mixing cell ({patch * down} px: patch '
                f'{patch} x 2^{len(backbone.layers) - 1} mergings)')
        return (ph // down, pw // down), patch * down

    def _check_parts(self) -> None:
        backbone, neck = self.backbone, self.neck
        mask_ratio = getattr(backbone, 'mask_ratio', None)
        mixing = hasattr(backbone, 'cell_resolution') or isinstance(
            backbone, MixMIMTransformer)
        if mask_ratio is None or not mixing:
            raise TypeError('MixMIMPlus needs a mixing backbone '
                            "('MixMIMPretrainTransformer' or 'MixMIMViT'), "
                            f'got {type(backbone).__name__}')
        range_ratio = getattr(backbone, 'range_mask_ratio', 0.0)
        if not 0 < mask_ratio < 1:
            raise ValueError('`backbone.mask_ratio` (fraction of mixed '
                             f'cells) must be in (0, 1), got {mask_ratio}')
        if range_ratio < 0 or mask_ratio + range_ratio >= 1:
            raise ValueError('`backbone.range_mask_ratio` must satisfy 0 <= '
                             'range_mask_ratio < 1 - mask_ratio, got '
                             f'{range_ratio}')
        (gh, gw), stride = self._decoder_grid()
        width = getattr(backbone, 'num_features', None) or \
            backbone.embed_dims  # hierarchical: last stage; ViT: width
        embed = getattr(neck, 'decoder_embed', None)
        if embed is not None and embed.in_features != width:
            raise ValueError(f'`neck.embed_dim` must be the encoder output '
                             f'width {width}, got {embed.in_features}')
        if getattr(neck, 'num_patches', gh * gw) != gh * gw:
            raise ValueError(f'`neck.num_patches`={neck.num_patches} must be '
                             f'the {gh}x{gw}={gh * gw} encoder tokens')
        neck_stride = self.head.patch_size
        if neck_stride != stride:
            raise ValueError(f'`neck.encoder_stride`={neck_stride} must be '
                             f'the {stride}-px region one encoder output '
                             'token covers')
        if is_prmim_neck(neck) or is_prmim_head(self.head):
            self._check_partial_parts(gh * gw)

    def _check_partial_parts(self, num_tokens: int) -> None:
        """Checks of the PR-MIM partial decoder.

        Args:
            num_tokens (int): Tokens the decoder sees per branch (the
                ``gh x gw`` grid of :meth:`_decoder_grid`).
        """
        backbone, neck, head = self.backbone, self.neck, self.head
        if not is_prmim_neck(neck):
            raise TypeError('a PR-MIM head needs the partial decoder '
                            "(`neck.type`='PRMIMMixMIMPretrainDecoder'), got "
                            f'{type(neck).__name__}')
        if not is_prmim_head(head):
            raise TypeError('the partial decoder needs a head that '
                            'supervises thrown tokens '
                            "(`head.type`='PRMIMMixMIMPretrainHead'), got "
                            f'{type(head).__name__}')
        mask_ratio = backbone.mask_ratio
        range_ratio = backbone.range_mask_ratio
        num_thrown = neck.num_thrown(num_tokens)
        if hasattr(backbone, 'cell_resolution'):  # MixMIMViT
            # each branch reconstructs the cells of the other image: at
            # least min(mixed, unmixed) cells, whatever the drawn ratio
            ch, cw = backbone.cell_resolution
            cells = ch * cw
            fewest = cells
            for ratio in (mask_ratio, mask_ratio + range_ratio):
                mixed = min(max(int(cells * ratio), 1), cells - 1)
                fewest = min(fewest, mixed, cells - mixed)
            fewest *= backbone.cell_patches**2
            if num_thrown >= fewest:
                raise ValueError(
                    f'`throw_ratio`={neck.throw_ratio} throws {num_thrown} '
                    f'of the {fewest} tokens a branch may reconstruct '
                    f'(mask_ratio={mask_ratio}, range_mask_ratio='
                    f'{range_ratio}): use throw_ratio < min(mask_ratio, 1 - '
                    'mask_ratio - range_mask_ratio)')
        else:
            self._check_hierarchical_throw(num_tokens, num_thrown)
        num_decoded = num_tokens - num_thrown
        if num_thrown > 0 and neck.reconstructs_thrown \
                and neck.k > num_decoded:
            raise ValueError(
                f'`k`={neck.k} exceeds the {num_decoded} decoded tokens a '
                f'thrown token can mix; use 1 <= k <= {num_decoded}')

    def _check_hierarchical_throw(self, num_tokens: int,
                                  num_thrown: int) -> None:
        """Bound ``throw_ratio`` by the hierarchical backbone's mixing rule.

        ``MixMIMPretrainTransformer.random_masking`` mixes
        ``int(L * (mask_ratio + U(0, range_mask_ratio)))`` of the ``L``
        decoder tokens (one per mixing cell, no clamping), so a branch
        reconstructs at least ``min(int(L * mask_ratio), L - int(L *
        (mask_ratio + range_mask_ratio)))`` tokens.
        """
        backbone, neck = self.backbone, self.neck
        mask_ratio = backbone.mask_ratio
        range_ratio = backbone.range_mask_ratio
        least_mixed = int(num_tokens * mask_ratio)
        most_mixed = int(num_tokens * (mask_ratio + range_ratio))
        if least_mixed < 1:
            # branch 1 would reconstruct nothing: the decoder gets no
            # token to reconstruct whatever throw_ratio
            raise ValueError(
                f'`backbone.mask_ratio`={mask_ratio} mixes {least_mixed} of '
                f'the {num_tokens} cells: use 1/{num_tokens} <= mask_ratio '
                '< 1 so that each branch reconstructs a cell')
        fewest = min(least_mixed, num_tokens - most_mixed)
        if num_thrown >= fewest:
            raise ValueError(
                f'`throw_ratio`={neck.throw_ratio} throws {num_thrown} of the '
                f'{fewest} tokens a branch may reconstruct (mask_ratio='
                f'{mask_ratio}, range_mask_ratio={range_ratio}, '
                f'{num_tokens} cells): use 0 <= throw_ratio < '
                f'{fewest}/{num_tokens} = {fewest / num_tokens:.4g}')

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
        if not is_prmim_neck(self.neck):
            return super().loss(inputs, data_samples, **kwargs)
        latent, mask = self.backbone(inputs)
        x_rec, kept_mask, thrown_mask = self.neck(latent, mask)
        if self.neck.num_thrown(latent.shape[1]) == 0:
            # every token decoded: exactly MixMIM's loss
            return self.head.loss(x_rec, inputs, mask)
        return self.head.loss(
            x_rec, inputs, mask, kept_mask,
            thrown_mask if self.neck.reconstructs_thrown else None)
