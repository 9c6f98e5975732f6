# Copyright (c) OpenMMLab. All rights reserved.
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmpretrain.models import SwinTransformer
from mmpretrain.models.utils import ShiftWindowMSA, resize_pos_embed
from mmpretrain.registry import MODELS
from torch import nn

from ..utils.decoder import EncoderGrid

# Additive attention bias that removes a key (as Swin's own shift mask).
_MASKED = -100.
ENCODER_MODES = ('visible', 'dense')
# nn.Unfold's kernel order of PatchMerging: (row, col) offsets of the
# 2x2 children, the channel index being ``c * 4 + child``.
_CHILDREN = ((0, 0), (0, 1), (1, 0), (1, 1))


class WindowGroups(NamedTuple):
    """Visible tokens of one (window size, shift) grouped by window.

    ``nWv`` windows hold visible tokens, ``M`` is the largest count.

    Attributes:
        gather (torch.Tensor): (nWv, M) compact-token index of every slot
            (0 on padding slots).
        rel_index (torch.Tensor): (nWv, M, M) index into the relative
            position bias table of every (query, key) slot pair.
        mask (torch.Tensor): (nWv, M, M) Swin's shift mask of the slot
            pairs, ``-inf`` for padding keys.
        inverse (torch.Tensor): (N_vis, ) flat slot (in ``nWv * M``) of
            every compact token.
    """
    gather: torch.Tensor
    rel_index: torch.Tensor
    mask: torch.Tensor
    inverse: torch.Tensor


def window_groups(pos: torch.Tensor, hw_shape: Tuple[int, int],
                  window_size: int, shift_size: int,
                  rel_position_index: torch.Tensor) -> WindowGroups:
    """Group visible tokens by the (shifted) Swin window they fall in.

    Args:
        pos (torch.Tensor): Sorted raster indices (N_vis, ) of the visible
            tokens of an ``hw_shape`` map.
        hw_shape (tuple[int, int]): The map (H, W), divisible by the window.
        window_size (int): Window side w.
        shift_size (int): Cyclic shift of the block (0 for none).
        rel_position_index (torch.Tensor): The (w*w, w*w) relative position
            index of ``WindowMSA``.

    Returns:
        WindowGroups: Index tensors of the windows holding visible tokens.
    """
    H, W = hw_shape
    w = window_size
    # coordinates after Swin's roll by -shift
    row = torch.remainder(pos // W - shift_size, H)
    col = torch.remainder(pos % W - shift_size, W)
    win = (row // w) * (W // w) + col // w
    inner = (row % w) * w + col % w
    order = torch.argsort(win * w * w + inner)  # by window, then position
    counts = torch.bincount(win, minlength=(H // w) * (W // w))
    present = counts > 0
    num_windows, M = int(present.sum()), int(counts.max())
    rank = torch.cumsum(present.long(), 0) - 1  # window -> compact window
    starts = torch.cumsum(counts[present], 0) - counts[present]
    sorted_win = rank[win[order]]
    slot = torch.arange(len(pos), device=pos.device) - starts[sorted_win]
    flat = sorted_win * M + slot
    gather = pos.new_zeros(num_windows * M)
    gather[flat] = order
    valid = torch.zeros(num_windows * M, dtype=torch.bool, device=pos.device)
    valid[flat] = True
    slots = pos.new_zeros(num_windows * M)
    slots[flat] = inner[order]
    slots = slots.view(num_windows, M)
    inverse = torch.empty_like(order)
    inverse[order] = flat
    rel_index = rel_position_index[slots[:, :, None], slots[:, None, :]]
    shift_mask = ShiftWindowMSA.get_attn_mask((H, W),
                                              window_size=w,
                                              shift_size=shift_size,
                                              device=pos.device)
    if shift_mask is None:
        mask = torch.zeros(num_windows, M, M, device=pos.device)
    else:
        ids = present.nonzero().squeeze(1)
        mask = shift_mask[ids[:, None, None], slots[:, :, None],
                          slots[:, None, :]]
    mask = mask.masked_fill(~valid.view(num_windows, 1, M), float('-inf'))
    return WindowGroups(gather.view(num_windows, M), rel_index, mask, inverse)


def grouped_window_attention(w_msa: nn.Module, x: torch.Tensor,
                             groups: WindowGroups) -> torch.Tensor:
    """``WindowMSA`` with its own parameters on grouped visible tokens.

    Args:
        w_msa (nn.Module): The block's ``WindowMSA``.
        x (torch.Tensor): Compact tokens (B, N_vis, C).
        groups (WindowGroups): The grouping of the block.

    Returns:
        torch.Tensor: Attention outputs (B, N_vis, C), compact order.
    """
    B, _, C = x.shape
    nW, M = groups.gather.shape
    nH = w_msa.num_heads
    # qkv and proj are per token: run them on the compact tokens, not on
    # the padded window slots
    qkv = w_msa.qkv(x)[:, groups.gather.flatten()]
    qkv = qkv.reshape(B * nW, M, 3, nH, C // nH).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    q = q * w_msa.scale
    attn = q @ k.transpose(-2, -1)  # (B*nW, nH, M, M)
    bias = w_msa.relative_position_bias_table[groups.rel_index]
    attn = attn.view(B, nW, nH, M, M) + bias.permute(0, 3, 1, 2)
    attn = attn + groups.mask.unsqueeze(1)
    attn = w_msa.softmax(attn.view(-1, nH, M, M))
    attn = w_msa.attn_drop(attn)
    out = (attn @ v).transpose(1, 2).reshape(B, nW * M, C)
    return w_msa.proj_drop(w_msa.proj(out[:, groups.inverse]))


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

    Two encoder modes compute the same visible outputs (Swin's fixed
    windows, relative position bias and shift mask; masked tokens never
    reach a visible one):

    - ``'visible'`` (default): only the visible tokens are computed, as the
      official (GreenMIM-style) code. As the mask is batch-shared and its
      cells align with every stage's tokens, the visible set is the same for
      all samples and the tokens stay (B, N_vis, C) in raster order. Every
      block runs its LayerNorms, FFN, residuals and drop path on them;
      window attention groups them by the (cyclically shifted) window they
      fall in, pads every group to the block's largest visible count and
      applies the block's own ``WindowMSA`` parameters with the gathered
      relative position bias, shift mask and a key mask for the padding.
      Windows without visible tokens are skipped. Patch merging gathers the
      2x2 children in ``PatchMerging``'s (``nn.Unfold``) channel order. The
      taps are scattered back on their full grid, zero at masked positions
      (the decoders replace those by mask tokens). Unlike GreenMIM, the
      groups are Swin's own windows, not a knapsack packing.
    - ``'dense'``: attention-masked dense windows (GreenMIM's "masking"
      mode): every token is computed, but masked tokens are removed as keys
      from every window attention (an additive -100 on top of the shift
      mask), at the cost of the full image.

    Args:
        mask_ratio (float): Fraction of cells to mask. Defaults to 0.75.
        mask_patch_size (int): Side of a mask cell in pixels; must be a
            multiple of the last stage's token size. Defaults to 32.
        out_indices (Sequence[int]): Tapped stages. Defaults to all four.
        out_after_downsample (bool): Must stay True (taps after merging).
        encoder_mode (str): ``'visible'`` (compute visible tokens only) or
            ``'dense'`` (attention-masked full image). Defaults to
            ``'visible'``.
        **kwargs: Other arguments of :class:`mmpretrain.models.
            SwinTransformer`.
    """

    def __init__(self,
                 arch: Union[str, dict] = 'base',
                 mask_ratio: float = 0.75,
                 mask_patch_size: int = 32,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 out_after_downsample: bool = True,
                 encoder_mode: str = 'visible',
                 **kwargs) -> None:
        if encoder_mode not in ENCODER_MODES:
            raise ValueError(f'`encoder_mode` must be one of {ENCODER_MODES}'
                             f', got {encoder_mode!r}')
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
        if encoder_mode == 'visible':
            # the stage maps are even (cells align with the last token):
            # PatchMerging's adaptive padding never pads
            merging = dict(
                kernel_size=(2, 2),
                stride=(2, 2),
                dilation=(1, 1),
                padding=(0, 0))
            for i, stage in enumerate(self.stages[:-1]):
                sampler = stage.downsample.sampler
                if any(
                        tuple(getattr(sampler, k)) != v
                        for k, v in merging.items()):
                    raise ValueError(
                        f'`encoder_mode`=\'visible\' needs 2x2 patch '
                        f'merging (kernel 2, stride 2), stage {i} differs; '
                        f'use `encoder_mode`=\'dense\'')
        self.encoder_mode = encoder_mode
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

    def decoder_grid(self) -> EncoderGrid:
        """The taps (stage outputs after merging) and the mask cells."""
        H, W = self.patch_resolution
        grids, widths = [], []
        for i in self.out_indices:
            merged = self.stages[i].downsample is not None
            grids.append(H >> (i + merged))
            widths.append(self.num_features[i])
        patch = self.patch_embed.projection.kernel_size[0]
        # the mask keeps int(ratio * cells) + 1 cells masked
        num_masked = int(self.mask_ratio * self.num_cells) + 1
        return EncoderGrid(
            grids=tuple(grids),
            widths=tuple(widths),
            patch_size=self.mask_patch_size,
            img_size=(H * patch, W * patch),
            in_channels=self.patch_embed.projection.in_channels,
            fewest_masked=num_masked,
            masking=f'mask_ratio={self.mask_ratio}',
            kind='swin')

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
            tap-normed; at masked positions zero in ``'visible'`` mode and
            unused features in ``'dense'`` mode), the mask (B, cells) with
            1 = masked, and ``None`` (no restore ids: the mask is shared).
            Without: the normed feature maps of ``SwinTransformer``.
        """
        if not mask:
            return super().forward(x)
        cell_mask = self.random_mask(x.shape[0], x.device)
        if self.encoder_mode == 'visible':
            return self._forward_visible(x, cell_mask), cell_mask, None
        self._visible = 1 - cell_mask[0].reshape(self.mask_grid)
        try:
            outs = super().forward(x)
        finally:
            self._visible = None
        latents = [o.flatten(2).transpose(1, 2) for o in outs]
        return latents, cell_mask, None

    def visible_plan(self, cell_mask: torch.Tensor) -> List[Dict]:
        """Index tensors of the visible-only forward, from the mask alone.

        Args:
            cell_mask (torch.Tensor): The batch-shared mask (B, cells),
                1 = masked.

        Returns:
            list[dict]: Per stage: ``pos`` (sorted raster indices of the
            visible tokens of the stage map), ``hw`` (the map),
            ``block_groups`` (the :class:`WindowGroups` of every block, one
            computation per window size and shift) and, for merging stages,
            ``children`` ((N_vis', 4) compact indices of each merged visible
            token's 2x2 children in ``nn.Unfold`` order).
        """
        H, W = self.patch_resolution
        gh, gw = self.mask_grid
        cells = cell_mask[0].reshape(gh, gw) == 0
        device = cell_mask.device
        plan = []
        for i, stage in enumerate(self.stages):
            h, w = H >> i, W >> i
            vis = cells.repeat_interleave(h // gh,
                                          0).repeat_interleave(w // gw, 1)
            pos = vis.flatten().nonzero().squeeze(1)
            groups, block_groups = {}, []
            for block in stage.blocks:
                attn = block.attn
                ws, shift = attn.window_size, attn.shift_size
                if min(h, w) == ws and not attn.pad_small_map:
                    shift = 0  # as ShiftWindowMSA: no shift on one window
                if (ws, shift) not in groups:
                    groups[ws, shift] = window_groups(
                        pos, (h, w), ws, shift,
                        attn.w_msa.relative_position_index)
                block_groups.append(groups[ws, shift])
            step = dict(pos=pos, hw=(h, w), block_groups=block_groups)
            if stage.downsample is not None:
                lookup = torch.full((h * w, ),
                                    -1,
                                    dtype=torch.long,
                                    device=device)
                lookup[pos] = torch.arange(len(pos), device=device)
                row, col = pos // w, pos % w
                top = pos[(row % 2 == 0) & (col % 2 == 0)]  # raster order
                row, col = top // w, top % w
                step['children'] = torch.stack([
                    lookup[(row + dr) * w + col + dc] for dr, dc in _CHILDREN
                ], 1)
            plan.append(step)
        return plan

    def _visible_block(self, block: nn.Module, x: torch.Tensor,
                       groups: WindowGroups) -> torch.Tensor:
        """One ``SwinBlock`` on the compact visible tokens."""

        def inner_forward(x: torch.Tensor) -> torch.Tensor:
            identity = x
            x = block.norm1(x)
            x = grouped_window_attention(block.attn.w_msa, x, groups)
            x = block.attn.drop(x) + identity
            identity = x
            x = block.norm2(x)
            return block.ffn(x, identity=identity)

        if block.with_cp and x.requires_grad:
            return cp.checkpoint(inner_forward, x, use_reentrant=False)
        return inner_forward(x)

    def _forward_visible(self, x: torch.Tensor,
                         cell_mask: torch.Tensor) -> List[torch.Tensor]:
        """Visible-only forward; the taps on their full grids (B, h*w, C)."""
        x, hw_shape = self.patch_embed(x)
        if tuple(hw_shape) != tuple(self.patch_resolution):
            raise ValueError(
                f'`encoder_mode`=\'visible\' needs inputs of `img_size` '
                f'(a {self.patch_resolution} patch grid), got a '
                f'{tuple(hw_shape)} patch grid')
        if self.use_abs_pos_embed:
            x = x + resize_pos_embed(
                self.absolute_pos_embed, self.patch_resolution, hw_shape,
                self.interpolate_mode, self.num_extra_tokens)
        x = self.drop_after_pos(x)
        plan = self.visible_plan(cell_mask)
        x = x[:, plan[0]['pos']]
        outs = []
        for i, (stage, step) in enumerate(zip(self.stages, plan)):
            for block, groups in zip(stage.blocks, step['block_groups']):
                x = self._visible_block(block, x, groups)
            if stage.downsample is not None:
                B, N, C = x.shape
                # (B, N', 4, C) -> nn.Unfold's channel order c * 4 + child
                x = x[:, step['children'].flatten()].view(B, -1, 4, C)
                x = x.transpose(2, 3).reshape(B, -1, 4 * C)
                merge = stage.downsample
                x = merge.reduction(merge.norm(x) if merge.norm else x)
                pos, (h, w) = plan[i + 1]['pos'], plan[i + 1]['hw']
            else:
                pos, (h, w) = step['pos'], step['hw']
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(x)
                full = out.new_zeros(out.shape[0], h * w, out.shape[2])
                outs.append(full.index_copy(1, pos, out))
        return outs
