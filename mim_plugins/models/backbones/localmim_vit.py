# Copyright (c) OpenMMLab. All rights reserved.
from typing import List, Optional, Sequence, Tuple, Union

import torch
from mmcv.cnn import build_norm_layer
from mmengine.model import ModuleList
from mmpretrain.models import MAEViT
from mmpretrain.registry import MODELS

from ..utils.decoder import EncoderGrid
from ..utils.masked_vit import (check_masked_vit_kwargs, masked_vit_grid,
                                masked_vit_stem)


def check_tap_indices(out_indices: Sequence[int],
                      num_layers: int) -> List[int]:
    """Validate the (0-based) layers whose outputs LocalMIM decodes.

    Args:
        out_indices (Sequence[int]): Tapped layer indices, lowest first.
        num_layers (int): Depth of the encoder.

    Returns:
        list[int]: The indices as a list.

    Raises:
        ValueError: If they are empty, not ints, out of ``[0, num_layers)``
            or not strictly increasing.
    """
    allowed = (f'a non-empty, strictly increasing list of ints in '
               f'[0, {num_layers - 1}]')
    if (not isinstance(out_indices, (list, tuple)) or len(out_indices) == 0
            or not all(
                isinstance(i, int) and not isinstance(i, bool)
                for i in out_indices)):
        raise ValueError(f'`out_indices` must be {allowed}, '
                         f'got {out_indices!r}')
    indices = list(out_indices)
    if any(not 0 <= i < num_layers for i in indices):
        raise ValueError(f'`out_indices` out of range: must be {allowed} '
                         f'(encoder depth {num_layers}), got {indices}')
    if any(a >= b for a, b in zip(indices, indices[1:])):
        raise ValueError(f'`out_indices` must be strictly increasing '
                         f'({allowed}), got {indices}')
    return indices


@MODELS.register_module()
class LocalMIMViT(MAEViT):
    """MAE's masked ViT encoder with LocalMIM's multi-layer taps.

    Implementation of `Masked Image Modeling with Local Multi-Scale
    Reconstruction <https://arxiv.org/abs/2303.05251>`_.

    Masking, embeddings and layers are :class:`mmpretrain.models.MAEViT`'s.
    The outputs of the layers in ``out_indices`` (official: ``[1, 3, L-3,
    L-1]``) each go through their own LayerNorm (``tap_norms``) and are
    decoded by their own LocalMIM decoder; as in the official code there is
    no separate final norm (``final_norm=False``), so the parameter layout of
    the encoder is ``VisionTransformer``'s without ``ln1``.

    Args:
        arch (str | dict): ViT architecture. Defaults to 'b'.
        out_indices (Sequence[int], optional): 0-based indices of the tapped
            layers, strictly increasing. Defaults to ``[1, 3, L-3, L-1]``.
        norm_cfg (dict): Config of all norms, the tap norms included.
            Defaults to ``dict(type='LN', eps=1e-6)``.
        final_norm (bool): Must stay False (the tap norms replace it).
        **kwargs: Other arguments of :class:`mmpretrain.models.MAEViT`;
            ``mask_ratio`` must be in (0, 1) and ``img_size`` a multiple
            of ``patch_size``.
    """

    def __init__(self,
                 arch: Union[str, dict] = 'b',
                 out_indices: Optional[Sequence[int]] = None,
                 norm_cfg: dict = dict(type='LN', eps=1e-6),
                 final_norm: bool = False,
                 **kwargs) -> None:
        if final_norm:
            raise ValueError('LocalMIMViT needs `final_norm`=False: every '
                             'tap has its own norm (`tap_norms`)')
        check_masked_vit_kwargs(kwargs)
        # Build with the last layer as output first; taps checked below.
        super().__init__(
            arch=arch,
            out_indices=-1,
            norm_cfg=norm_cfg,
            final_norm=False,
            **kwargs)
        if out_indices is None:
            L = self.num_layers
            out_indices = [1, 3, L - 3, L - 1]
        self.out_indices = check_tap_indices(out_indices, self.num_layers)
        self.tap_norms = ModuleList([
            build_norm_layer(norm_cfg, self.embed_dims)[1]
            for _ in self.out_indices
        ])

    def decoder_grid(self) -> EncoderGrid:
        """Every tap on the patch grid, at the encoder width."""
        return masked_vit_grid(self, len(self.out_indices))

    def forward(
        self,
        x: torch.Tensor,
        mask: Optional[bool] = True
    ) -> Union[Tuple[List[torch.Tensor], torch.Tensor, torch.Tensor], Tuple[
            torch.Tensor, ...]]:
        """Masked multi-tap forward, or the plain forward of all taps.

        Args:
            x (torch.Tensor): Images (B, C, H, W).
            mask (bool, optional): With True (pre-training), mask patches at
                random as MAE does; with None/False, run on all patches.

        Returns:
            tuple: With ``mask``: the list of tap features (each
            (B, 1 + visible, C), tap-normed, lowest tap first), the mask
            (B, L) with 1 for removed patches and the restore ids (B, L).
            Without: the tap outputs formatted by ``out_type`` (tap-normed
            when ``out_type='raw'``), the last tap last.
        """
        if not mask:
            outs = super().forward(x, mask=None)
            if self.out_type == 'raw':
                outs = tuple(norm(o) for norm, o in zip(self.tap_norms, outs))
            return outs

        x, mask, ids_restore = masked_vit_stem(self, x)
        latents = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i in self.out_indices:
                norm = self.tap_norms[self.out_indices.index(i)]
                latents.append(norm(x))
            if i == self.out_indices[-1]:
                break  # layers above the last tap get no gradient
        return latents, mask, ids_restore
