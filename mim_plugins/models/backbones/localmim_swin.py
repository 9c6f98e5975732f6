# Copyright (c) OpenMMLab. All rights reserved.
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmpretrain.models import SwinTransformer
from mmpretrain.models.utils import ShiftWindowMSA
from mmpretrain.registry import MODELS

# Additive attention bias that removes a key (as Swin's own shift mask).
_MASKED = -100.


@MODELS.register_module()
class LocalMIMSwin(SwinTransformer):
    """Swin encoder for LocalMIM with a batch-shared mask on coarse cells.

    Implementation of `Masked Image Modeling with Local Multi-Scale
    Reconstruction <https://arxiv.org/abs/2303.05251>`_.

    As the official code, one random mask is drawn per batch on a grid of
    ``mask_patch_size`` px cells (32 px: 7x7 for 224 px) and the output of
    every stage *after its patch merging* is tapped through its own
    LayerNorm (``norm{i}``): 28x28 (2C), 14x14 (4C), 7x7 (8C), 7x7 (8C) for
    224 px. The official count quirk ``randperm(L) <= int(ratio * L)`` is
    kept: ``int(ratio * L) + 1`` cells are masked (37 of 49 at 0.75).

    Visible-token processing is realised with **attention-masked dense
    windows** (GreenMIM's "masking" mode): every token is computed, but
    masked tokens are removed as keys from every window attention, so they
    never reach a visible token (patch merging only merges 2x2 tokens of the
    same cell, LayerNorm and MLP act per token). The visible outputs are
    therefore those of a visible-only encoder with Swin's fixed windows; the
    cost is that of the full image (see ``configs/localmim/README.md``),
    and GreenMIM's knapsack window *grouping* is not reproduced.

    Args:
        mask_ratio (float): Fraction of cells to mask. Defaults to 0.75.
        mask_patch_size (int): Side of a mask cell in pixels; must be a
            multiple of the last stage's token size. Defaults to 32.
        out_indices (Sequence[int]): Tapped stages. Defaults to all four.
        out_after_downsample (bool): Must stay True (taps after merging).
        **kwargs: Other arguments of :class:`mmpretrain.models.
            SwinTransformer`.
    """

    def __init__(self,
                 arch: Union[str, dict] = 'base',
                 mask_ratio: float = 0.75,
                 mask_patch_size: int = 32,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 out_after_downsample: bool = True,
                 **kwargs) -> None:
        if not out_after_downsample:
            raise ValueError('LocalMIMSwin taps every stage after its patch '
                             'merging: `out_after_downsample` must be True')
        # Swin indexes its stages with out_indices: check before building
        settings = self.arch_zoo.get(arch.lower(), {}) if isinstance(
            arch, str) else arch
        depths = settings.get('depths') if isinstance(settings, dict) else None
        num_stages = len(depths) if depths is not None else 4
        indices = list(out_indices)
        if not indices or any(not 0 <= i < num_stages for i in indices) or \
                any(a >= b for a, b in zip(indices, indices[1:])):
            raise ValueError(f'`out_indices` must be strictly increasing '
                             f'stage indices in [0, {num_stages - 1}], got '
                             f'{indices}')
        super().__init__(
            arch=arch,
            out_indices=list(out_indices),
            out_after_downsample=True,
            **kwargs)
        num_stages = len(self.stages)
        if not 0 < mask_ratio < 1:
            raise ValueError(f'`mask_ratio` must be in (0, 1), got '
                             f'{mask_ratio}')
        patch_size = self.patch_embed.projection.kernel_size[0]
        token = patch_size * 2**(num_stages - 1)  # last stage's token
        if mask_patch_size % token:
            raise ValueError(f'`mask_patch_size`={mask_patch_size} must be a '
                             f'multiple of the last stage token ({token} px)')
        H, W = self.patch_resolution
        if (H * patch_size) % mask_patch_size or \
                (W * patch_size) % mask_patch_size:
            raise ValueError(f'`img_size` must be divisible by '
                             f'`mask_patch_size`={mask_patch_size}')
        for i, stage in enumerate(self.stages):
            # masked windows are not padded (see `_window_key_mask`)
            ws = stage.blocks[0].attn.window_size
            if (H >> i) % ws or (W >> i) % ws:
                raise ValueError(
                    f'`window_size` must divide every stage map: stage {i} '
                    f'is {H >> i}x{W >> i}, got {ws}')
        self.mask_ratio = mask_ratio
        self.mask_patch_size = mask_patch_size
        self.mask_grid = (H * patch_size // mask_patch_size,
                          W * patch_size // mask_patch_size)
        self._visible: Optional[torch.Tensor] = None
        for module in self.modules():
            if isinstance(module, ShiftWindowMSA):
                module.register_forward_pre_hook(self._window_key_mask)
                module.w_msa.register_forward_pre_hook(
                    self._add_key_mask, with_kwargs=True)

    @property
    def num_cells(self) -> int:
        """int: Number of mask cells."""
        return self.mask_grid[0] * self.mask_grid[1]

    def random_mask(self, batch_size: int,
                    device: torch.device) -> torch.Tensor:
        """One mask for the whole batch, (B, cells) with 1 = masked."""
        L = self.num_cells
        num_masked = int(self.mask_ratio * L) + 1  # official `<=` quirk
        mask = (torch.randperm(L, device=device) < num_masked).float()
        return mask[None].expand(batch_size, -1)

    def _window_key_mask(self, module: ShiftWindowMSA, args: tuple) -> None:
        """Per-window key bias of this block at its resolution and shift."""
        module.w_msa._localmim_key_mask = None
        if self._visible is None:
            return
        hw_shape = args[1]
        H, W = hw_shape
        w = module.window_size
        if H % w or W % w:
            raise ValueError(f'feature map {H}x{W} is not divisible by the '
                             f'window size {w}; masked Swin needs no padding')
        shift = module.shift_size
        if min(H, W) == w and not module.pad_small_map:
            shift = 0  # as ShiftWindowMSA: no shift on a one-window map
        vis = F.interpolate(
            self._visible[None, None], size=(H, W), mode='nearest')[0, 0]
        if shift > 0:
            vis = torch.roll(vis, shifts=(-shift, -shift), dims=(0, 1))
        windows = vis.reshape(H // w, w, W // w, w).permute(0, 2, 1, 3)
        keys = windows.reshape(-1, 1, w * w)  # (nW, 1, N)
        module.w_msa._localmim_key_mask = (1 - keys) * _MASKED

    @staticmethod
    def _add_key_mask(w_msa, args: tuple, kwargs: dict):
        """Add the key bias to the (shift) mask passed to ``WindowMSA``."""
        key_mask = getattr(w_msa, '_localmim_key_mask', None)
        if key_mask is None:
            return None
        N = key_mask.shape[-1]
        bias = key_mask.expand(-1, N, -1)  # (nW, N queries, N keys)
        shift_mask = kwargs.get('mask')
        kwargs['mask'] = bias if shift_mask is None else shift_mask + bias
        return args, kwargs

    def forward(
        self,
        x: torch.Tensor,
        mask: Optional[bool] = True
    ) -> Union[Tuple[List[torch.Tensor], torch.Tensor, None], Tuple]:
        """Masked multi-stage forward, or SwinTransformer's forward.

        Args:
            x (torch.Tensor): Images (B, C, H, W).
            mask (bool, optional): With True, draw a batch-shared mask and
                hide the masked cells; with None/False, plain forward.

        Returns:
            tuple: With ``mask``: the tap tokens (each (B, h*w, C_i),
            tap-normed), the mask (B, cells) with 1 = masked, and ``None``
            (no restore ids: the mask is shared). Without: the normed
            feature maps of ``SwinTransformer``.
        """
        if not mask:
            return super().forward(x)
        cell_mask = self.random_mask(x.shape[0], x.device)
        self._visible = 1 - cell_mask[0].reshape(self.mask_grid)
        try:
            outs = super().forward(x)
        finally:
            self._visible = None
        latents = [o.flatten(2).transpose(1, 2) for o in outs]
        return latents, cell_mask, None
