# Copyright (c) OpenMMLab. All rights reserved.
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmpretrain.models import MixMIMTransformer
from mmpretrain.models.utils import resize_pos_embed
from mmpretrain.registry import MODELS
from torch.utils.checkpoint import checkpoint

from ..utils.checks import check_img_size


@MODELS.register_module()
class MixMIMPyramidTransformer(MixMIMTransformer):
    """Multi-scale MixMIM backbone for detection and segmentation.

    Implementation of `MixMAE: Mixed and Masked Autoencoder for Efficient
    Pretraining of Hierarchical Vision Transformers
    <https://arxiv.org/abs/2205.13137>`_, returning stage feature maps.

    :class:`mmpretrain.models.MixMIMTransformer` returns only a pooled
    vector. This subclass returns, for every stage in ``out_indices``, the
    stage output before patch merging as a (B, C_s, H_s, W_s) map (strides
    4, 8, 16, 32; channels C, 2C, 4C, 8C), each through a LayerNorm:
    new ``norm{i}`` layers for stages 0-2, and the pre-trained final
    ``norm`` for the last stage. All parameters of the parent keep their
    names, so mmpretrain MixMIM checkpoints (pre-training or fine-tuning,
    ``prefix='backbone.'``) load unchanged; only the new ``norm{i}`` are
    missing.

    Inputs of another size than ``img_size`` are supported: the fixed
    absolute position embedding is resized (bicubic) and the feature maps
    are padded to whole windows (as Swin does), so a stage whose map is
    larger than its window uses windowed instead of global attention.

    Args:
        arch (str | dict): MixMIM architecture, see
            :class:`MixMIMTransformer`. Defaults to 'base'.
        out_indices (Sequence[int] | int): Stages to output (0-3).
            Defaults to (0, 1, 2, 3).
        frozen_stages (int): -1 freezes nothing, 0 the patch embedding,
            ``k > 0`` also stages ``0..k-1`` and their output norms.
            Defaults to -1.
        norm_eval (bool): Keep norm layers in eval mode (no effect on
            LayerNorm; kept for mmdet/mmseg configs). Defaults to False.
        Other arguments are those of :class:`MixMIMTransformer`.
    """

    def __init__(self,
                 arch: Union[str, dict] = 'base',
                 mlp_ratio: float = 4,
                 img_size: int = 224,
                 patch_size: int = 4,
                 in_channels: int = 3,
                 window_size: Sequence[int] = [14, 14, 14, 7],
                 qkv_bias: bool = True,
                 patch_cfg: dict = dict(),
                 norm_cfg: dict = dict(type='LN'),
                 drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0,
                 attn_drop_rate: float = 0.0,
                 use_checkpoint: bool = False,
                 out_indices: Union[Sequence[int], int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        # the parent indexes window_size per stage: check before building
        settings = self.arch_zoo.get(arch.lower(), {}) if isinstance(
            arch, str) else arch
        depths = settings.get('depths') if isinstance(settings, dict) else None
        if depths is not None and (not isinstance(window_size, (list, tuple))
                                   or len(window_size) != len(depths)):
            raise ValueError(
                f'`window_size` must be a list of {len(depths)} ints (one '
                f'per stage), got {window_size!r}')
        check_img_size(img_size, patch_size)
        super().__init__(
            arch=arch,
            mlp_ratio=mlp_ratio,
            img_size=img_size,
            patch_size=patch_size,
            in_channels=in_channels,
            window_size=window_size,
            qkv_bias=qkv_bias,
            patch_cfg=patch_cfg,
            norm_cfg=norm_cfg,
            drop_rate=drop_rate,
            drop_path_rate=drop_path_rate,
            attn_drop_rate=attn_drop_rate,
            use_checkpoint=use_checkpoint,
            init_cfg=init_cfg)
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        out_indices = [
            i + self.num_layers if i < 0 else i for i in out_indices
        ]
        for i in out_indices:
            if not 0 <= i < self.num_layers:
                raise ValueError(f'`out_indices` must be in [0, '
                                 f'{self.num_layers - 1}], got {i}')
        if not -1 <= frozen_stages <= self.num_layers:
            raise ValueError(f'`frozen_stages` must be in [-1, '
                             f'{self.num_layers}], got {frozen_stages}')
        for i, layer in enumerate(self.layers):
            # blocks at the build size run unpadded windows
            h, w = layer.blocks[0].input_resolution
            ws = layer.blocks[0].window_size
            if h % ws or w % ws:
                raise ValueError(
                    f'`window_size` must divide every stage map at '
                    f'`img_size`={img_size}: stage {i} is {h}x{w}, got '
                    f'window_size[{i}]={window_size[i]}')
        self.out_indices = tuple(sorted(set(out_indices)))
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.num_features_per_stage = [
            int(self.embed_dims * 2**i) for i in range(self.num_layers)
        ]
        # the last stage reuses the pre-trained final `norm`
        for i in self.out_indices:
            if i == self.num_layers - 1:
                continue
            self.add_module(
                f'norm{i}',
                build_norm_layer(norm_cfg, self.num_features_per_stage[i])[1])
        self._freeze_stages()

    def _out_norm(self, i: int) -> torch.nn.Module:
        return self.norm if i == self.num_layers - 1 else getattr(
            self, f'norm{i}')

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        frozen = [self.patch_embed]
        for i in range(self.frozen_stages):
            frozen.append(self.layers[i])
            if i in self.out_indices:
                frozen.append(self._out_norm(i))
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'MixMIMPyramidTransformer':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    @staticmethod
    def _block_forward(block, x: torch.Tensor,
                       hw_shape: Tuple[int, int]) -> torch.Tensor:
        """A ``MixMIMBlock`` on a map of any size (no attention mask)."""
        if tuple(hw_shape) == tuple(block.input_resolution):
            return block(x)
        H, W = hw_shape
        B, _, C = x.shape
        ws = block.window_size
        shortcut = x
        x = block.ln1(x).view(B, H, W, C)
        pad_b, pad_r = (ws - H % ws) % ws, (ws - W % ws) % ws
        x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        Hp, Wp = H + pad_b, W + pad_r
        windows = block.window_partition(x, ws).view(-1, ws * ws, C)
        windows = block.attn(windows).view(-1, ws, ws, C)
        x = block.window_reverse(windows, Hp, Wp, ws)[:, :H, :W]
        x = shortcut + block.drop_path(x.reshape(B, H * W, C))
        return block.ffn(block.norm2(x), identity=x)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Stage feature maps.

        Args:
            x (torch.Tensor): Images, (B, C, H, W).

        Returns:
            tuple[torch.Tensor]: One (B, C_s, H_s, W_s) map per
            ``out_indices`` entry.
        """
        x, hw_shape = self.patch_embed(x)
        x = x + resize_pos_embed(
            self.absolute_pos_embed,
            self.patch_resolution,
            hw_shape,
            mode='bicubic',
            num_extra_tokens=0)
        x = self.drop_after_pos(x)

        outs = []
        for i, layer in enumerate(self.layers):
            for block in layer.blocks:
                if layer.use_checkpoint and x.requires_grad:
                    x = checkpoint(
                        self._block_forward,
                        block,
                        x,
                        hw_shape,
                        use_reentrant=False)
                else:
                    x = self._block_forward(block, x, hw_shape)
            if i in self.out_indices:
                out = self._out_norm(i)(x)
                out = out.view(-1, *hw_shape,
                               out.shape[-1]).permute(0, 3, 1, 2).contiguous()
                outs.append(out)
            if layer.downsample is not None:
                x, hw_shape = layer.downsample(x, hw_shape)
        return tuple(outs)
