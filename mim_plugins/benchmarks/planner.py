# Copyright (c) OpenMMLab. All rights reserved.
"""Memory planner: the largest per-device batch that fits a memory budget,
and the gradient accumulation that keeps the config's batch."""
import math
from typing import Dict, Optional

GIB = 1024**3


class MemoryBudgetError(ValueError):
    """A memory budget too small for one image per step."""


def usable_bytes(budget_gib: float,
                 margin_gib: float,
                 margin_frac: float,
                 calibration: Optional[Dict] = None) -> float:
    """Bytes the planner lets tensors use out of a ``budget_gib`` device:
    ``budget * (1 - margin_frac) - margin_gib``; with a ``calibration``
    (:func:`load_calibration`), ``(budget - context_gib) / ratio`` instead
    (the measured ratio of ``max_memory_reserved`` to the predicted peak)."""
    if calibration is not None:
        return (budget_gib - calibration['context_gib']) / \
            calibration['ratio'] * GIB
    return (budget_gib * (1 - margin_frac) - margin_gib) * GIB


def min_budget_gib(peak_bytes: float,
                   margin_gib: float,
                   margin_frac: float,
                   calibration: Optional[Dict] = None) -> float:
    """The device memory (GiB, rounded up to 0.01) in which ``peak_bytes``
    fits with the margin (the inverse of :func:`usable_bytes`)."""
    if calibration is not None:
        gib = peak_bytes / GIB * calibration['ratio'] + \
            calibration['context_gib']
    else:
        gib = (peak_bytes / GIB + margin_gib) / (1 - margin_frac)
    return math.ceil(gib * 100 - 1e-9) / 100


def margin_text(margin_gib: float,
                margin_frac: float,
                calibration: Optional[Dict] = None) -> str:
    """The margin in words, for tables and messages."""
    if calibration is not None:
        return (f"measured on {calibration['device']}: x"
                f"{calibration['ratio']:.3f} + "
                f"{calibration['context_gib']:.2f} GiB CUDA context")
    return f'{margin_gib:g} GiB + {margin_frac:.0%}'


def accumulation_plan(target_batch: int, max_batch: int) -> tuple:
    """Per-device batch and accumulation steps reaching ``target_batch``.

    The batch is the largest divisor of ``target_batch`` not above
    ``max_batch``, so that ``batch * accumulative_counts`` is exactly the
    config's batch (the learning rate and schedule stay valid).

    Returns:
        tuple: ``(batch, accumulative_counts)``.
    """
    if max_batch < 1 or target_batch < 1:
        raise ValueError('target_batch and max_batch must be >= 1, got '
                         f'{target_batch} and {max_batch}')
    divisors = range(1, min(max_batch, target_batch) + 1)
    batch = max(d for d in divisors if target_batch % d == 0)
    return batch, target_batch // batch


def plan_memory(lines: Dict,
                budget_gib: float,
                margin_gib: float = 1.0,
                margin_frac: float = 0.1,
                ddp: bool = False,
                attention: Optional[str] = None,
                calibration: Optional[Dict] = None) -> Dict:
    """Plan one config (measured by :func:`measure_memory_lines`) for one
    device memory.

    Args:
        lines (dict): The result of :func:`measure_memory_lines`.
        budget_gib (float): Device memory in GiB.
        margin_gib (float): Memory kept for what CPU measurement cannot
            see and does not grow with the batch (CUDA context, cuBLAS and
            attention workspaces). Defaults to 1.0.
        margin_frac (float): Fraction of the device kept for the caching
            allocator's rounding and fragmentation. Defaults to 0.1.
        ddp (bool): Count the gradient buckets of
            ``DistributedDataParallel`` (``lines['ddp_bucket_bytes']``: one
            more copy of the trainable parameters' gradients, held for the
            whole run). Defaults to False (one process, no DDP).
        attention (str, optional): ``'sdpa'`` or ``'eager'``: plan that
            path of ``lines['paths']``. Defaults to None (``lines['step']``
            and ``lines['accumulate']``: the path the config runs).
        calibration (dict, optional): A measured margin
            (:func:`load_calibration`) replacing ``margin_gib`` and
            ``margin_frac``. Defaults to None.

    Returns:
        dict: ``max_batch`` (largest batch of one plain step),
        ``batch`` and ``accumulative_counts`` reaching the config's
        per-device batch (``train_dataloader.batch_size`` and
        ``optim_wrapper.accumulative_counts``), ``effective_batch``,
        ``predicted_peak_gib`` of that plan, ``usable_gib``.

    Raises:
        MemoryBudgetError: If not even one image per step fits.
    """
    step, accumulate = (lines['step'], lines['accumulate']) \
        if attention is None else (lines['paths'][attention]['step'],
                                   lines['paths'][attention]['accumulate'])
    usable = usable_bytes(budget_gib, margin_gib, margin_frac, calibration)
    buckets = lines.get('ddp_bucket_bytes', lines['grad_bytes']) * ddp
    usable -= buckets
    target = lines['config_batch'] * lines['accumulative_counts']
    max_batch = step.max_batch(usable)
    if max_batch >= target:
        batch, counts, peak = target, 1, step.peak(target)
    else:
        acc_batch = accumulate.max_batch(usable)
        if acc_batch < 1:
            needed = accumulate.peak(1) + buckets
            resident = lines['resident_bytes']
            minimum = min_budget_gib(needed, margin_gib, margin_frac,
                                     calibration)
            raise MemoryBudgetError(
                f"{budget_gib:g} GiB is too small for {lines['name']} "
                f"({lines['precision']}): parameters, buffers and optimizer "
                f'state take {resident / GIB:.3g} GiB, one image per step '
                f'with accumulated gradients peaks at {needed / GIB:.3g} '
                'GiB; with the margin '
                f'({margin_text(margin_gib, margin_frac, calibration)}) it '
                f'needs at least {minimum:g} GiB.')
        batch, counts = accumulation_plan(target, acc_batch)
        peak = accumulate.peak(batch)
    return dict(
        budget_gib=budget_gib,
        usable_gib=usable / GIB,
        max_batch=max_batch,
        batch=batch,
        accumulative_counts=counts,
        effective_batch=batch * counts,
        predicted_peak_gib=peak / GIB)
