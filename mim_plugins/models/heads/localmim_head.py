# Copyright (c) OpenMMLab. All rights reserved.
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule, ModuleList
from mmpretrain.registry import MODELS

from ..necks.localmim_neck import LOCALMIM_SCALES, check_scales
from ..utils.checks import check_range
from ..utils.decoder import DecoderHead
from ..utils.hog_target import HOGTarget

TARGET_TYPES = ('hog', 'pixel')


@MODELS.register_module()
class LocalMIMHead(DecoderHead, BaseModule):
    """Multi-scale targets, loss masks and losses of LocalMIM.

    Implementation of `Masked Image Modeling with Local Multi-Scale
    Reconstruction <https://arxiv.org/abs/2303.05251>`_.

    Scale ``s`` divides the image into cells of ``patch_size / s`` pixels
    (4/8/16/32 px for ViT-B/16 with scales 4/2/1/0.5) and describes every
    cell by either

    - ``'hog'``: a :class:`HOGTarget` histogram per colour channel of the
      normalised image (``in_channels * n_bins`` dims), or
    - ``'pixel'``: its pixels, normalised per cell with ``norm_pix``
      (``in_channels * cell^2`` dims).

    The patch mask is brought to each grid: nearest upsampling for
    ``s > 1`` (every cell inherits its patch's mask), identity for
    ``s = 1`` and the average over ``1/s x 1/s`` patches for ``s < 1`` (a
    soft weight). Each scale's loss is the mask-weighted mean squared error
    (per cell, mean over the target dims) and the total is the weighted sum
    (equal weights officially); each scale is logged as ``loss_scale{k}``.

    Args:
        patch_size (int): Patch size of the encoder in pixels.
        scales (Sequence[float]): Output scales, lowest tap first.
            Defaults to ``(4, 2, 1, 0.5)``.
        target (str): ``'hog'`` or ``'pixel'``. Defaults to ``'hog'``.
        in_channels (int): Image channels. Defaults to 3.
        n_bins (int): HOG orientation bins (9 for ViT-B, 18 for ViT-L).
            Defaults to 9.
        hog_bias (bool): Frozen random bias in the HOG Sobel convolution
            (official ViT-L ``--hog_bias``). Defaults to False.
        hog_gradient (str): How :class:`HOGTarget` computes the Sobel
            responses: ``'conv'`` (official) or ``'difference'`` (exact
            zeros on flat regions). Defaults to ``'conv'``.
        norm_pix (bool): Normalise the pixel targets per cell.
            Defaults to True.
        loss (dict): Per-scale loss, called as ``loss(pred, target, mask)``.
            Defaults to ``PixelReconstructionLoss`` with L2.
        loss_weights (Sequence[float], optional): Weight of every scale.
            Defaults to 1 each.
        init_cfg (dict, optional): Initialization config.
    """

    neck_type = "'LocalMIMNeck', 'LocalMIMSwinNeck' or 'LocalMIMDecoder'"

    def __init__(self,
                 patch_size: int,
                 scales: Sequence[float] = LOCALMIM_SCALES,
                 target: str = 'hog',
                 in_channels: int = 3,
                 n_bins: int = 9,
                 hog_bias: bool = False,
                 hog_gradient: str = 'conv',
                 norm_pix: bool = True,
                 loss: dict = dict(
                     type='PixelReconstructionLoss', criterion='L2'),
                 loss_weights: Optional[Sequence[float]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.scales = check_scales(scales)
        if target not in TARGET_TYPES:
            raise ValueError(f'`target` must be one of {list(TARGET_TYPES)}, '
                             f'got {target!r}')
        check_range('patch_size', patch_size, 1, integer=True)
        self.target = target
        self.patch_size = patch_size
        self.in_channels = in_channels
        self.norm_pix = norm_pix
        self.cell_sizes = []
        for s in self.scales:
            cell = patch_size / s
            if cell != int(cell):
                raise ValueError(
                    f'`patch_size`={patch_size} must be divisible by every '
                    f'scale in `scales`={self.scales} (cell = patch_size / '
                    'scale pixels)')
            self.cell_sizes.append(int(cell))
        if loss_weights is None:
            loss_weights = [1.] * len(self.scales)
        if not isinstance(loss_weights, (list, tuple)) or \
                len(loss_weights) != len(self.scales):
            raise ValueError(f'`loss_weights` must have one weight per scale '
                             f'({len(self.scales)}), got {loss_weights!r}')
        self.loss_weights = list(loss_weights)
        if target == 'hog':
            self.hog = ModuleList([
                HOGTarget(
                    cell_size=c,
                    n_bins=n_bins,
                    bias=hog_bias,
                    gradient=hog_gradient)
                for c in self.cell_sizes
            ])
            self.n_bins = n_bins
        else:
            small = [c for c in self.cell_sizes if c * c * in_channels < 2]
            if norm_pix and small:
                raise ValueError(
                    f'`norm_pix`=True needs at least 2 values per cell, but '
                    f'cells of {small} px with {in_channels} channel(s) have '
                    'one; use target=\'hog\', norm_pix=False or coarser '
                    '`scales`')
        self.loss_module = MODELS.build(loss)

    @property
    def target_channels(self) -> List[int]:
        """list[int]: Target dimension of every scale."""
        if self.target == 'hog':
            return [self.in_channels * self.n_bins] * len(self.scales)
        return [self.in_channels * c * c for c in self.cell_sizes]

    def _pixel_target(self, x: torch.Tensor, cell: int) -> torch.Tensor:
        """Cells of ``cell`` px as (B, h*w, cell*cell*C), norm_pix-ed."""
        B, C, H, W = x.shape
        h, w = H // cell, W // cell
        x = x.reshape(B, C, h, cell, w, cell)
        x = torch.einsum('nchpwq->nhwpqc', x).reshape(B, h * w, -1)
        if self.norm_pix:
            mean = x.mean(dim=-1, keepdim=True)
            var = x.var(dim=-1, keepdim=True)
            x = (x - mean) / (var + 1.e-6)**.5
        return x

    @torch.no_grad()
    def construct_targets(self, inputs: torch.Tensor) -> List[torch.Tensor]:
        """Targets of every scale.

        Args:
            inputs (torch.Tensor): Normalised images (B, C, H, W).

        Returns:
            list[torch.Tensor]: Per scale (B, cells, target_channels[k]),
            cells in raster order.
        """
        H, W = inputs.shape[-2:]
        largest = max(self.cell_sizes)
        if H % largest or W % largest:
            raise ValueError(f'image size {H}x{W} is not divisible by the '
                             f'largest cell ({largest} px)')
        if self.target == 'hog':
            return [hog(inputs).flatten(2).transpose(1, 2) for hog in self.hog]
        return [self._pixel_target(inputs, c) for c in self.cell_sizes]

    def construct_masks(self, mask: torch.Tensor,
                        grid: Sequence[int]) -> List[torch.Tensor]:
        """The patch mask brought to every scale's grid.

        Args:
            mask (torch.Tensor): Patch mask (B, h*w), 1 for removed patches.
            grid (Sequence[int]): Patch grid (h, w).

        Returns:
            list[torch.Tensor]: Per scale (B, cells) weights: the patch's
            mask for upsampled grids, the mean over the merged patches for
            ``s < 1``.
        """
        B = mask.shape[0]
        m = mask.float().reshape(B, 1, *grid)
        masks = []
        for s in self.scales:
            if s >= 1:
                scaled = F.interpolate(m, scale_factor=int(s), mode='nearest')
            else:
                k = int(round(1 / s))
                scaled = F.avg_pool2d(m, kernel_size=k, stride=k)
            masks.append(scaled.flatten(1))
        return masks

    def loss(self, preds: Sequence[torch.Tensor], inputs: torch.Tensor,
             mask: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Compute the per-scale losses.

        Args:
            preds (Sequence[torch.Tensor]): Predictions per scale, each
                (B, cells, target_channels[k]).
            inputs (torch.Tensor): Normalised images (B, C, H, W).
            mask (torch.Tensor): Patch mask (B, L), 1 for removed patches.

        Returns:
            dict[str, torch.Tensor]: ``loss_scale{k}`` per scale (weighted,
            lowest tap / finest scale first); their sum is the total loss.
        """
        H, W = inputs.shape[-2:]
        grid = (H // self.patch_size, W // self.patch_size)
        targets = self.construct_targets(inputs)
        masks = self.construct_masks(mask, grid)
        losses = dict()
        for k, (pred, target, m, weight) in enumerate(
                zip(preds, targets, masks, self.loss_weights)):
            if pred.shape != target.shape:
                raise ValueError(f'scale {self.scales[k]}: prediction '
                                 f'{tuple(pred.shape)} does not match target '
                                 f'{tuple(target.shape)}')
            # fp32 loss, also under AMP
            losses[f'loss_scale{k}'] = weight * self.loss_module(
                pred.float(), target.float(), m)
        return losses
