# Copyright (c) OpenMMLab. All rights reserved.
import copy
import inspect
from collections import OrderedDict
from typing import Dict, List

from mmengine.model import is_model_wrapper
from mmengine.optim import (DefaultOptimWrapperConstructor, OptimWrapper,
                            OptimWrapperDict)
from mmpretrain.registry import (OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS,
                                 OPTIMIZERS)
from torch import nn

from ...models.selfsup import BIM


@OPTIM_WRAPPERS.register_module()
class BIMOptimWrapper(OptimWrapperDict):
    """One optimizer wrapper per BIM block.

    Implementation of `BIM: Block-Wise Self-Supervised Learning with Masked
    Image Modeling <https://arxiv.org/abs/2311.17218>`_.

    An :class:`mmengine.optim.OptimWrapperDict` keyed ``block1`` ..
    ``blockK``, so the runner builds the configured ``param_scheduler`` for
    every block, saves and resumes every block's optimizer (and AMP loss
    scaler), and scales every block's lr with ``auto_scale_lr``. Each entry is
    a normal ``OptimWrapper``/``AmpOptimWrapper`` with its own gradient
    clipping, accumulation counter and (on CUDA) ``GradScaler``.

    Built by :class:`BIMOptimWrapperConstructor`.

    Args:
        **optim_wrappers (OptimWrapper): Wrappers named ``block1`` ..
            ``blockK``.
    """

    def __init__(self, **optim_wrappers: OptimWrapper) -> None:
        expected = [f'block{k + 1}' for k in range(len(optim_wrappers))]
        if sorted(optim_wrappers) != sorted(expected):
            raise ValueError('BIMOptimWrapper needs wrappers named '
                             f'{expected}, got {list(optim_wrappers)}.')
        super().__init__(**OrderedDict(
            (name, optim_wrappers[name]) for name in expected))

    @property
    def num_blocks(self) -> int:
        """int: Number of blocks K."""
        return len(self.optim_wrappers)

    def block(self, block: int) -> OptimWrapper:
        """The wrapper of ``block`` (0-based)."""
        return self.optim_wrappers[f'block{block + 1}']

    def initialize_count_status(self, model: nn.Module, init_counts: int,
                                max_counts: int) -> None:
        """Initialise the accumulation counters of every block.

        ``OptimWrapperDict`` does nothing here; every block is updated once
        per iteration, so all counters follow the runner's iteration.
        """
        for wrapper in self.optim_wrappers.values():
            wrapper.initialize_count_status(model, init_counts, max_counts)

    def _merge(self, per_block: Dict[str, List[float]],
               key: str) -> Dict[str, List[float]]:
        # The logger reads the first group's value of each entry.
        values = list(per_block.values())
        if all(v[:1] == values[0][:1] for v in values):
            return {key: values[0]}
        return per_block

    def get_lr(self) -> Dict[str, List[float]]:
        """Learning rates: one ``lr`` when all blocks agree, else per block.

        With the same schedule for every block (the default) the log shows a
        single ``lr``; ``block{k}.lr`` appears only when they differ.
        """
        lr_dict = super().get_lr()
        merged = {}
        for key in ('lr', 'base_lr'):
            part = {k: v for k, v in lr_dict.items() if k.endswith(f'.{key}')}
            if part:
                merged.update(self._merge(part, key))
        return merged

    def get_momentum(self) -> Dict[str, List[float]]:
        """Momentum: one ``momentum`` when all blocks agree, else per block."""
        return self._merge(super().get_momentum(), 'momentum')

    def load_state_dict(self, state_dict: dict) -> None:
        """Load every block's optimizer (and loss-scaler) state."""
        if sorted(state_dict) != sorted(self.optim_wrappers):
            raise ValueError(
                'BIM optimizer state has blocks '
                f'{sorted(state_dict)} but the model has '
                f'{sorted(self.optim_wrappers)}: block_boundaries changed '
                'since the checkpoint was written.')
        super().load_state_dict(state_dict)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class BIMOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Build a :class:`BIMOptimWrapper` with one optimizer per block.

    Implementation of `BIM: Block-Wise Self-Supervised Learning with Masked
    Image Modeling <https://arxiv.org/abs/2311.17218>`_.

    The ``optim_wrapper`` config is the usual single-optimizer one plus
    ``constructor='BIMOptimWrapperConstructor'``: ``type`` (e.g.
    ``OptimWrapper`` or ``AmpOptimWrapper``), ``optimizer``,
    ``paramwise_cfg``, ``clip_grad`` and ``accumulative_counts`` apply to
    every block's wrapper, while the parameters are partitioned by the
    model's ``get_block_id``. ``paramwise_cfg`` is resolved on the whole
    model, so its keys (e.g. ``'ln'``, ``'bias'``, ``'cls_token'``) match the
    same parameter names as with MAE. Gradient clipping is per block; the
    norms are logged as ``grad_norm_block{k}``.

    Example:
        >>> optim_wrapper = dict(
        >>>     constructor='BIMOptimWrapperConstructor',
        >>>     type='AmpOptimWrapper', loss_scale='dynamic',
        >>>     optimizer=dict(type='AdamW', lr=1.5e-4, weight_decay=0.05),
        >>>     paramwise_cfg=dict(custom_keys={'bias': dict(decay_mult=0.)}))
    """

    def __call__(self, model: nn.Module) -> BIMOptimWrapper:
        if is_model_wrapper(model):
            model = model.module
        if not isinstance(model, BIM):
            raise TypeError('BIMOptimWrapperConstructor needs a block-wise '
                            "model (`model.type`='BIM'), got "
                            f'{type(model).__name__}.')
        num_blocks = model.num_blocks
        block_of = {
            id(p): model.get_block_id(name)
            for name, p in model.named_parameters()
        }
        groups: List[list] = [[] for _ in range(num_blocks)]
        if self.paramwise_cfg:
            params: List[dict] = []
            self.add_params(params, model)
            for group in params:
                groups[block_of[id(group['params'][0])]].append(group)
        else:
            for p in model.parameters():
                groups[block_of[id(p)]].append(p)

        wrapper_type = self.optim_wrapper_cfg.get('type', 'OptimWrapper')
        if wrapper_type in ('BIMOptimWrapper', BIMOptimWrapper):
            wrapper_type = 'OptimWrapper'
        optimizer_cls = self.optimizer_cfg['type']
        if isinstance(optimizer_cls, str):
            with OPTIMIZERS.switch_scope_and_registry(None) as registry:
                optimizer_cls = registry.get(optimizer_cls)
        first_arg = next(iter(inspect.signature(optimizer_cls).parameters))

        wrappers = OrderedDict()
        for k, block_params in enumerate(groups):
            if not block_params:
                raise ValueError(f'BIM block {k + 1} has no parameters.')
            optimizer_cfg = copy.deepcopy(self.optimizer_cfg)
            optimizer_cfg[first_arg] = block_params
            optimizer = OPTIMIZERS.build(optimizer_cfg)
            # deepcopy: OptimWrapper pops keys of its clip_grad dict.
            wrapper_cfg = copy.deepcopy(self.optim_wrapper_cfg)
            wrapper_cfg['type'] = wrapper_type
            wrapper = OPTIM_WRAPPERS.build(
                wrapper_cfg, default_args=dict(optimizer=optimizer))
            if getattr(wrapper, 'clip_grad_kwargs', None):
                # per-block clipping: log each block's norm separately
                wrapper.grad_name = f'{wrapper.grad_name}_block{k + 1}'
            wrappers[f'block{k + 1}'] = wrapper
        return BIMOptimWrapper(**wrappers)
