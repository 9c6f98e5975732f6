# Copyright (c) OpenMMLab. All rights reserved.
"""Training FLOPs, counted by ``torch.utils.flop_counter.FlopCounterMode``
over the model's own ``train_step`` (or ``loss`` and its backward)."""
from typing import Union

import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from torch.utils.flop_counter import FlopCounterMode

from .build import image_shape, load_config, make_batch
from .private_apis import cpu_attention_flop_formulas


def flop_counter_mode() -> FlopCounterMode:
    """A silent ``FlopCounterMode`` that also counts CPU attention."""
    return FlopCounterMode(
        display=False, custom_mapping=cpu_attention_flop_formulas())


def train_step_flops(model: torch.nn.Module,
                     inputs: torch.Tensor,
                     seed: int = 0) -> tuple:
    """FLOPs of one training forward and backward of ``model.loss``.

    The random state is seeded first, so two models with the same masking
    draw the same mask.

    Returns:
        tuple: The total and the per-operator counts of
        :func:`flop_counter_mode`.
    """
    model.zero_grad()
    counter = flop_counter_mode()
    torch.manual_seed(seed)
    with counter:
        losses = model.loss(inputs, None)
        # what mmengine's parse_losses optimizes
        sum(v for k, v in losses.items() if 'loss' in k).backward()
    return counter.get_total_flops(), counter.get_flop_counts()


def train_flops_per_image(path: Union[str, Config],
                          batch_size: int = 2,
                          seed: int = 0) -> float:
    """Training FLOPs per image of a config, counted as :func:`measure_config`
    counts them, without the memory and time measurements.

    One ``train_step`` (forward, backward and optimizer step) on random
    images runs under :func:`flop_counter_mode`, on CPU. The count depends on
    tensor shapes only, so the weights are left as the modules construct
    them (``init_weights`` is skipped) and no warm-up step runs.

    Args:
        path (str | Config): Config path (plugin or upstream), or a loaded
            config.
        batch_size (int): Images in the step; must be even for MixMIM's
            batch-flip pairing. Defaults to 2.
        seed (int): Seed of the masks and the random images.

    Returns:
        float: FLOPs of the step divided by ``batch_size``.
    """
    from mmpretrain.registry import MODELS
    cfg = load_config(path)
    model_cfg = cfg.model.copy()
    model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(model_cfg).train()
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
        data = make_batch(batch_size, image_shape(cfg), seed)
        with flop_counter_mode() as counter:
            model.train_step(data, optim_wrapper)
    return counter.get_total_flops() / batch_size
