# Copyright (c) OpenMMLab. All rights reserved.
from contextlib import contextmanager
from typing import Optional, Union

import torch
from mmengine.optim import OptimWrapper
from mmpretrain.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """Mixed-precision training on CPU: bfloat16 autocast.

    mmengine's ``AmpOptimWrapper`` needs a GPU. bfloat16 has float32's
    exponent range, so no loss scaling is needed; parameters, gradients and
    optimizer state stay in float32. ``tools/train.py --amp`` selects this
    wrapper when CUDA is unavailable.

    Args:
        dtype (str): Autocast dtype; only ``'bfloat16'`` runs on CPU.
            Defaults to ``'bfloat16'``.
        loss_scale: Accepted so that ``AmpOptimWrapper`` configs build;
            ignored.
        **kwargs: Arguments of :class:`mmengine.optim.OptimWrapper`.
    """

    def __init__(self,
                 dtype: Optional[Union[str, torch.dtype]] = 'bfloat16',
                 loss_scale=None,
                 **kwargs) -> None:
        if dtype not in (None, 'bfloat16', torch.bfloat16):
            raise ValueError(
                'optim_wrapper.dtype must be "bfloat16" for AMP on CPU, '
                f'got {dtype!r} (float16 autocast needs a GPU).')
        super().__init__(**kwargs)
        self.cast_dtype = torch.bfloat16

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        """Run the forward under bfloat16 CPU autocast."""
        with super().optim_context(model), torch.autocast(
                device_type='cpu', dtype=self.cast_dtype):
            yield
