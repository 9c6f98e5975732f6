# Copyright (c) OpenMMLab. All rights reserved.
import math

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS


@MODELS.register_module()
class HOGTarget(BaseModule):
    """Cell-wise histograms of oriented gradients, LocalMIM's target.

    Implementation of `Masked Image Modeling with Local Multi-Scale
    Reconstruction <https://arxiv.org/abs/2303.05251>`_.

    Unlike MaskFeat's HOG (mmpretrain's ``HOGGenerator``) there is no
    Gaussian window and the cell size is free, so one instance per scale
    gives the multi-scale targets. For every colour channel separately:

    1. gradients ``g0, g1`` from the 3x3 Sobel kernel
       ``[[1, 0, -1], [2, 0, -2], [1, 0, -1]]`` and its transpose, with
       reflect padding (``g0`` responds to vertical edges, ``g1`` to
       horizontal ones), computed as set by ``gradient``;
    2. magnitude ``sqrt(g0^2 + g1^2)`` and unsigned orientation
       ``atan2(g0, g1)``, hard-assigned to bin
       ``floor(theta * n_bins / pi) mod n_bins`` (the official code floors
       although its comment says "linear interpolation"). With this
       convention a horizontal edge lands in bin 0 and a vertical edge in bin
       ``n_bins // 2`` (for 9 bins, bin 4 = [80, 100) degrees);
    3. magnitudes averaged over non-overlapping ``cell_size`` x
       ``cell_size`` cells;
    4. L2 normalisation over the bins of each cell (a cell without gradient
       stays all zeros).

    The channels are concatenated channel-major (R bins, G bins, B bins).

    The two ``gradient`` forms compute the same filter and differ in float
    round-off only, which matters where the image is flat: there the
    convolution leaves round-off of the order of 1e-7 and step 4 scales a
    cell holding nothing else to a full unit entry in one bin,
    while the difference form gives exact zeros and keeps such a cell all
    zeros. Cells that mix flat pixels with any real gradient are the same
    in both forms to within float precision.

    Args:
        cell_size (int): Side of a cell in pixels (4/8/16/32 for the four
            LocalMIM ViT-B/16 scales).
        n_bins (int): Orientation bins over 180 degrees. Defaults to 9.
        gradient (str): How the Sobel responses are computed.

            - ``'conv'``: one 3x3 convolution, as the official ``HOGLayer``.
            - ``'difference'``: a pixel difference followed by the
              ``[1, 2, 1]`` smoothing, exact zeros on flat regions.

            Defaults to ``'conv'``.
        bias (bool): Give the Sobel convolution a frozen, randomly
            initialised bias, as the official ViT-L recipe does with
            ``--hog_bias`` (drawn like ``nn.Conv2d``'s default bias,
            U(-1/3, 1/3), and stored in the checkpoint so that targets stay
            identical on resume). Defaults to False.
        init_cfg (dict, optional): Unused, kept for the ``BaseModule`` API.
    """

    GRADIENTS = ('conv', 'difference')

    def __init__(self,
                 cell_size: int,
                 n_bins: int = 9,
                 bias: bool = False,
                 gradient: str = 'conv',
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not isinstance(cell_size, int) or isinstance(cell_size, bool) \
                or cell_size < 1:
            raise ValueError(
                f'`cell_size` must be a positive int, got {cell_size!r}')
        if not isinstance(n_bins, int) or isinstance(n_bins, bool) \
                or n_bins < 1:
            raise ValueError(
                f'`n_bins` must be a positive int (9 for ViT-B, 18 for '
                f'ViT-L), got {n_bins!r}')
        if gradient not in self.GRADIENTS:
            raise ValueError(f'`gradient` must be one of {self.GRADIENTS}, '
                             f'got {gradient!r}')
        self.cell_size = cell_size
        self.n_bins = n_bins
        self.gradient = gradient
        # constant kernels, not saved in checkpoints
        sobel = torch.tensor([[1., 0., -1.], [2., 0., -2.], [1., 0., -1.]])
        self.register_buffer(
            'kernel',
            torch.stack([sobel, sobel.t()])[:, None],
            persistent=False)
        if bias:
            # nn.Conv2d's default bias init with fan_in = 3 * 3.
            self.register_buffer('bias',
                                 torch.empty(2).uniform_(-1 / 3, 1 / 3))
        else:
            self.bias = None

    def sobel(self, x: torch.Tensor) -> torch.Tensor:
        """Sobel responses ``(g0, g1)`` of a padded (N, 1, H+2, W+2) image.

        Returns:
            torch.Tensor: (N, 2, H, W), with the frozen bias if any.
        """
        if self.gradient == 'conv':
            return F.conv2d(x, self.kernel, self.bias)
        # differences of equal pixels are exactly 0
        dx = x[..., :, :-2] - x[..., :, 2:]  # x[j-1] - x[j+1]
        g0 = dx[..., :-2, :] + 2 * dx[..., 1:-1, :] + dx[..., 2:, :]
        dy = x[..., :-2, :] - x[..., 2:, :]  # x[i-1] - x[i+1]
        g1 = dy[..., :, :-2] + 2 * dy[..., :, 1:-1] + dy[..., :, 2:]
        grad = torch.cat([g0, g1], dim=1)
        if self.bias is not None:
            grad = grad + self.bias.view(1, 2, 1, 1)
        return grad

    @property
    def with_bias(self) -> bool:
        """bool: Whether the Sobel convolution has the frozen bias."""
        return self.bias is not None

    def out_channels(self, in_channels: int) -> int:
        """Target dimension for images with ``in_channels`` channels."""
        return in_channels * self.n_bins

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Compute the HOG features.

        Args:
            x (torch.Tensor): Normalised images (B, C, H, W); H and W must be
                multiples of ``cell_size``.

        Returns:
            torch.Tensor: Features (B, C * n_bins, H / cell, W / cell).
        """
        B, C, H, W = x.shape
        c = self.cell_size
        if H % c or W % c:
            raise ValueError(f'image size {H}x{W} is not divisible by the '
                             f'HOG `cell_size` {c}')
        # Targets are computed in fp32 even under AMP.
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.float().reshape(B * C, 1, H, W)
            x = F.pad(x, (1, 1, 1, 1), mode='reflect')
            grad = self.sobel(x)  # (B*C, 2, H, W)
            # explicit sums: vector norms over the channel dim are slow on CPU
            g0, g1 = grad[:, :1], grad[:, 1:]
            magnitude = torch.sqrt(g0 * g0 + g1 * g1)
            phase = torch.atan2(g0, g1)
            bins = torch.floor(phase / math.pi * self.n_bins).long()
            bins = bins % self.n_bins
            hist = magnitude.new_zeros(B * C, self.n_bins, H, W)
            hist.scatter_(1, bins, magnitude)
            hist = F.avg_pool2d(hist, kernel_size=c, stride=c)
            norm = hist.square().sum(dim=1, keepdim=True).sqrt()
            hist = hist / norm.clamp_min(1e-12)  # as F.normalize
        return hist.reshape(B, C * self.n_bins, H // c, W // c)
