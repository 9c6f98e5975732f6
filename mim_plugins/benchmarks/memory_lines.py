# Copyright (c) OpenMMLab. All rights reserved.
"""The planner's fit: a config's peak memory as a function of the batch,
from two CPU-measured training steps."""
import os.path as osp
from typing import Dict, Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from .amp import use_cpu_autocast
from .attention import attention_summary
from .build import (build_model_and_optim, image_shape, load_config,
                    make_batch, per_device_batch)
from .memory import resident_bytes
from .private_apis import accumulating
from .trace import memory_trace, planned_timeline

# The attention paths the planner predicts: fused scaled-dot-product
# attention as measured, and eager attention modelled on top of it.
ATTENTION_PATHS = ('sdpa', 'eager')


class MemoryLines:
    """Peak memory as a function of the batch: ``max_i (a_i + b_i * batch)``.

    One line per operator of a training step, fitted through the live bytes
    after that operator at two batch sizes (see :func:`extrapolate_timeline`).
    The maximum of lines is convex in the batch, so the batches that fit a
    budget form an interval starting at 0.

    Args:
        timeline_small (Sequence[int]): Live bytes per operator at
            ``batch_small``.
        timeline_large (Sequence[int]): The same operators at
            ``batch_large``.
        batch_small (int): The smaller batch.
        batch_large (int): The larger batch.
    """

    def __init__(self, timeline_small: Sequence[int],
                 timeline_large: Sequence[int], batch_small: int,
                 batch_large: int) -> None:
        if len(timeline_small) != len(timeline_large) or not timeline_small:
            raise ValueError(
                'The two measured steps ran different operators '
                f'({len(timeline_small)} and {len(timeline_large)}); the '
                'model must run the same operators at every batch size.')
        if batch_large <= batch_small:
            raise ValueError('batch_large must be larger than batch_small, '
                             f'got {batch_small} and {batch_large}')
        small = torch.tensor(timeline_small, dtype=torch.float64)
        large = torch.tensor(timeline_large, dtype=torch.float64)
        self.slope = (large - small) / (batch_large - batch_small)
        self.intercept = small - self.slope * batch_small

    def peak(self, batch: float) -> float:
        """Predicted peak bytes at ``batch``."""
        return float((self.intercept + self.slope * batch).max())

    def max_batch(self, budget_bytes: float, limit: int = 1 << 20) -> int:
        """The largest batch whose predicted peak is at most
        ``budget_bytes`` (0 if not even one image fits; at most ``limit``)."""
        grows = self.slope > 0
        if grows.any():
            bound = ((budget_bytes - self.intercept[grows]) /
                     self.slope[grows]).min()
            batch = int(min(max(bound.floor().item(), 0), limit))
        else:
            batch = limit
        # operators whose memory does not grow with the batch
        while batch > 0 and self.peak(batch) > budget_bytes:
            batch -= 1
        return batch


def measure_timelines(cfg: Config,
                      batch: int,
                      precision: str = 'fp32',
                      img_size: Optional[int] = None,
                      accumulation_steps: int = 3,
                      seed: int = 0) -> Dict:
    """Live bytes per operator of a config's training step at ``batch``.

    A warm-up step runs first (it creates the optimizer state); then one
    training step and one gradient-accumulation cycle of
    ``accumulation_steps`` iterations (gradients stay alive between
    iterations, the last one steps) are tracked.  Methods that step part of
    the model at a time (BIM) are measured as they train: each block's graph
    and gradients are freed before the next block runs, so the peak is the
    largest block's, not the sum of the blocks.

    Args:
        cfg (Config): A config loaded by :func:`load_config`.
        batch (int): Per-device batch.
        precision (str): ``'fp32'`` or ``'amp'`` (the forward under CPU bf16
            autocast with CUDA's float32 policy, see
            :func:`use_cpu_autocast`). Defaults to ``'fp32'``.
        img_size (int, optional): Image size; defaults to the backbone's.
        accumulation_steps (int): Iterations of the accumulation cycle (3:
            its first, a middle and its last iteration). Defaults to 3.
        seed (int): Seed of the weights and the random images.

    Returns:
        dict: ``step`` and ``accumulate`` (the two measured timelines),
        ``planned`` (per attention path, ``'sdpa'`` and ``'eager'``, the two
        timelines as predicted on CUDA, see :func:`planned_timeline`),
        ``attention`` (:func:`attention_summary` of the step),
        ``resident_bytes`` (parameters, buffers and optimizer state between
        steps) and ``grad_bytes`` (gradients of the trainable parameters).
    """
    if precision not in ('fp32', 'amp'):
        raise ValueError(f"precision must be 'fp32' or 'amp', got "
                         f'{precision!r}')
    torch.manual_seed(seed)
    model, optim_wrapper = build_model_and_optim(cfg, 'cpu')
    if precision == 'amp':
        use_cpu_autocast(optim_wrapper)
    data = make_batch(batch, image_shape(cfg, img_size), seed)

    def step():
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            model.train_step(data, optim_wrapper)

    step()  # warm-up: optimizer state exists from now on
    resident = resident_bytes(model, optim_wrapper)
    grad_bytes = sum(p.numel() * p.element_size() for p in model.parameters()
                     if p.requires_grad)
    one_step = memory_trace(step, model, optim_wrapper)
    with accumulating(optim_wrapper, accumulation_steps):
        cycle = memory_trace(step, model, optim_wrapper, accumulation_steps)
    return dict(
        step=one_step.timeline,
        accumulate=cycle.timeline,
        planned={
            attention:
            dict(
                step=planned_timeline(one_step, attention, precision),
                accumulate=planned_timeline(cycle, attention, precision))
            for attention in ATTENTION_PATHS
        },
        attention=attention_summary(one_step),
        resident_bytes=float(resident),
        grad_bytes=float(grad_bytes))


def ddp_bucket_bytes(cfg: Config, grad_bytes: float) -> float:
    """Bytes of ``DistributedDataParallel``'s gradient buckets: one more copy
    of the gradients, held for the whole run, unless the config's
    ``model_wrapper_cfg`` sets ``gradient_as_bucket_view=True`` (gradients
    are then views into the buckets)."""
    wrapper = cfg.get('model_wrapper_cfg') or {}
    return 0.0 if wrapper.get('gradient_as_bucket_view') else grad_bytes


def measure_memory_lines(path: str,
                         precision: str = 'fp32',
                         batches: Sequence[int] = (2, 4),
                         img_size: Optional[int] = None,
                         accumulation_steps: int = 3,
                         seed: int = 0) -> Dict:
    """What the memory planner needs for one config, measured on CPU.

    :func:`measure_timelines` at two batches, turned into
    :class:`MemoryLines` for a plain step and for an accumulation cycle, per
    attention path (:data:`ATTENTION_PATHS`), with CUDA's multi-tensor
    optimizer temporaries added (see :func:`planned_timeline`).

    Args:
        path (str): Config path.
        precision (str): ``'fp32'`` or ``'amp'``. Defaults to ``'fp32'``.
        batches (Sequence[int]): Two batch sizes. Defaults to (2, 4).
        img_size (int, optional): Image size; defaults to the backbone's.
        accumulation_steps (int): Iterations of the measured accumulation
            cycle. Defaults to 3.
        seed (int): Seed of the weights and the random images.

    Returns:
        dict: ``paths`` (per attention path, ``step`` and ``accumulate``
        :class:`MemoryLines`), ``attention`` (the path the config's modules
        run on this torch: ``'sdpa'``, ``'eager'`` or ``'none'``),
        ``attention_calls``, ``step`` and ``accumulate`` (the lines of that
        path; ``'sdpa'`` if none), ``resident_bytes``, ``grad_bytes``,
        ``ddp_bucket_bytes`` (:func:`ddp_bucket_bytes`), ``config_batch``
        (the config's per-device batch), ``accumulative_counts`` (the
        config's) and ``peak_bytes_measured`` (per measured batch, on CPU).
    """
    small, large = batches
    cfg = load_config(path, 'cpu')
    runs = {
        b: measure_timelines(cfg, b, precision, img_size, accumulation_steps,
                             seed)
        for b in (small, large)
    }
    paths = {
        attention: {
            kind:
            MemoryLines(runs[small]['planned'][attention][kind],
                        runs[large]['planned'][attention][kind], small, large)
            for kind in ('step', 'accumulate')
        }
        for attention in ATTENTION_PATHS
    }
    detected = runs[small]['attention']['detected']
    default = paths.get(detected, paths['sdpa'])
    grad_bytes = runs[small]['grad_bytes']
    return dict(
        config=path,
        name=osp.splitext(osp.basename(path))[0],
        precision=precision,
        image_shape=list(image_shape(cfg, img_size)),
        batches=[small, large],
        config_batch=per_device_batch(cfg),
        accumulative_counts=int(
            cfg.optim_wrapper.get('accumulative_counts', 1)),
        resident_bytes=runs[small]['resident_bytes'],
        grad_bytes=grad_bytes,
        ddp_bucket_bytes=ddp_bucket_bytes(cfg, grad_bytes),
        peak_bytes_measured={
            str(b): float(max(runs[b]['step']))
            for b in (small, large)
        },
        attention=detected,
        attention_calls=runs[small]['attention']['calls'],
        paths=paths,
        step=default['step'],
        accumulate=default['accumulate'])
