# Copyright (c) OpenMMLab. All rights reserved.
from typing import Dict, Union

import torch
from mmengine.optim import OptimWrapperDict
from mmpretrain.registry import MODEL_WRAPPERS
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..selfsup.bim import BIM


class BIMBlockUnit(nn.Module):
    """The parameters and forward of one BIM block, as a module.

    It registers exactly the parameters block k owns (encoder layers, block
    norm, decoder, head; the stem for block 1) without owning the model, so
    that each block can be wrapped in its own ``DistributedDataParallel``
    whose all-reduce fires right after that block's backward.

    Args:
        model (BIM): The algorithm (kept as a plain attribute).
        block (int): Block index (0-based).
    """

    def __init__(self, model: BIM, block: int) -> None:
        super().__init__()
        self.block = block
        self.params = nn.ParameterList(model.block_parameters(block))
        # A bound method, not a submodule: the unit must not register the
        # whole model's parameters.
        self._forward_block = model.forward_block

    def forward(self, *args, **kwargs):
        """Same as ``BIM.forward_block(block, ...)``."""
        return self._forward_block(self.block, *args, **kwargs)


@MODEL_WRAPPERS.register_module()
class BIMDistributedDataParallel(nn.Module):
    """Data-parallel wrapper giving each BIM block its own DDP.

    Implementation of `BIM: Block-Wise Self-Supervised Learning with Masked
    Image Modeling <https://arxiv.org/abs/2311.17218>`_.

    mmengine's ``MMDistributedDataParallel.train_step`` never calls the
    model's ``train_step`` and one DDP around the whole model would expect
    every parameter's gradient after each backward. Here every block (its
    encoder layers, block norm, decoder and head, see ``BIMBlockUnit``) is
    wrapped in its own :class:`torch.nn.parallel.DistributedDataParallel`,
    and the model's block-wise ``train_step`` runs each block through its
    DDP, so block k's gradients are all-reduced right after block k's
    backward, before its optimizer steps.

    Use with
    ``model_wrapper_cfg=dict(type='mmpretrain.BIMDistributedDataParallel')``
    (the runner looks wrappers up in mmengine's root registry, so the scope
    prefix is needed).
    ``device_ids`` default to the current CUDA device, or ``None`` for CPU
    (gloo) training.

    Args:
        module (nn.Module): A :class:`BIM` model.
        broadcast_buffers (bool): Same as in DDP. Defaults to False.
        find_unused_parameters (bool): Same as in DDP. Defaults to False.
        **kwargs: Other arguments of DDP (``device_ids``, ``bucket_cap_mb``,
            ...).
    """

    def __init__(self,
                 module: nn.Module,
                 broadcast_buffers: bool = False,
                 find_unused_parameters: bool = False,
                 **kwargs) -> None:
        super().__init__()
        if not isinstance(module, BIM):
            raise TypeError('BIMDistributedDataParallel wraps a block-wise '
                            f'model (BIM), got {type(module).__name__}.')
        self.module = module
        if 'device_ids' not in kwargs:
            param = next(module.parameters())
            kwargs['device_ids'] = ([param.device.index or 0]
                                    if param.device.type == 'cuda' else None)
        units = [BIMBlockUnit(module, k) for k in range(module.num_blocks)]
        # A plain list: the DDPs share the model's parameters, which must be
        # registered (and saved) only once, under `module`.
        self.__dict__['block_ddps'] = [
            DistributedDataParallel(
                unit,
                broadcast_buffers=broadcast_buffers,
                find_unused_parameters=find_unused_parameters,
                **kwargs) for unit in units
        ]

    def train_step(self, data: Union[dict, tuple, list],
                   optim_wrapper: OptimWrapperDict) -> Dict[str, torch.Tensor]:
        """Block-wise train step with one all-reduce per block."""
        return self.module.train_step(
            data, optim_wrapper, block_forwards=self.block_ddps)

    def val_step(self, data: Union[dict, tuple, list]) -> list:
        """Gets the predictions of the module."""
        return self.module.val_step(data)

    def test_step(self, data: Union[dict, tuple, list]) -> list:
        """Gets the predictions of the module."""
        return self.module.test_step(data)

    def train(self, mode: bool = True) -> 'BIMDistributedDataParallel':
        """Set the mode of the model and of the per-block DDPs."""
        super().train(mode)
        for ddp in self.block_ddps:
            ddp.train(mode)
        return self
