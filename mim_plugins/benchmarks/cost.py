# Copyright (c) OpenMMLab. All rights reserved.
"""Cost of one real training step: FLOPs, peak memory and time.

Used by ``tools/analysis_tools/benchmark_efficiency.py``.  Everything is
measured around the model's own ``train_step`` (forward, backward and
optimizer step, so methods with several backward/step calls per iteration
are measured as they train).
"""
import os.path as osp
import statistics
import time
from typing import Callable, Dict, Optional

import torch
from mmengine.registry import DefaultScope

from .build import (build_model_and_optim, image_shape, load_config,
                    make_batch, per_device_batch)
from .flops import flop_counter_mode
from .memory import (LiveTensorMemory, extrapolate_memory,
                     extrapolate_timeline, optimizer_tensors, resident_bytes)


def measure_step(step: Callable[[], None],
                 model: torch.nn.Module,
                 optim_wrapper,
                 device: str = 'cpu',
                 iters: int = 3) -> Dict[str, float]:
    """FLOPs, peak memory and time of ``step`` (one training iteration).

    One warm-up step runs first (it creates the optimizer state, as in real
    training), then one step under :class:`FlopCounterMode`, one step under
    the memory tracker (CPU) or ``max_memory_allocated`` (CUDA), and
    ``iters`` timed steps.

    Args:
        step (Callable): Runs one training iteration.
        model (nn.Module): The model (for the resident-memory count).
        optim_wrapper: Its optimizer wrapper.
        device (str): ``'cpu'`` or ``'cuda'``. Defaults to ``'cpu'``.
        iters (int): Timed steps; the median is reported. Defaults to 3.

    Returns:
        dict: ``flops`` (per step), ``peak_bytes``, ``resident_bytes``,
        ``step_time`` (seconds, median) and, on CPU, ``timeline`` (live bytes
        after every operator).
    """
    step()  # warm-up: optimizer state exists from now on

    with flop_counter_mode() as counter:
        step()
    flops = counter.get_total_flops()

    resident = resident_bytes(model, optim_wrapper)
    timeline = None
    if device == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
    else:
        tracker = LiveTensorMemory()
        tracker.track(model.parameters())
        tracker.track(model.buffers())
        tracker.track(p.grad for p in model.parameters())
        tracker.track(optimizer_tensors(optim_wrapper))
        with tracker:
            step()
        peak = tracker.peak
        timeline = tracker.timeline

    times = []
    for _ in range(max(1, iters)):
        if device == 'cuda':
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        step()
        if device == 'cuda':
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return dict(
        flops=float(flops),
        peak_bytes=float(peak),
        resident_bytes=float(resident),
        step_time=statistics.median(times),
        timeline=timeline)


def ratio(value: Optional[float],
          baseline: Optional[float]) -> Optional[float]:
    """``value / baseline`` or None when either is missing or zero."""
    if not value or not baseline:
        return None
    return value / baseline


def measure_config(path: str,
                   batch_size: int = 8,
                   mem_batch: Optional[int] = None,
                   img_size: Optional[int] = None,
                   device: str = 'cpu',
                   iters: int = 3,
                   seed: int = 0) -> Dict:
    """Build a config's model and optimizer wrapper and measure a train step.

    Args:
        path (str): Config path (plugin or upstream).
        batch_size (int): Batch of the FLOPs/time measurement; memory is
            also measured at ``2 * batch_size``. Defaults to 8.
        mem_batch (int, optional): Batch at which memory is compared;
            defaults to the config's per-device batch (extrapolated linearly
            from the two measured batches unless it is one of them).
        img_size (int, optional): Image size; defaults to the backbone's.
        device (str): ``'cpu'`` or ``'cuda'``. Defaults to ``'cpu'``.
        iters (int): Timed steps. Defaults to 3.
        seed (int): Seed of the weights and the random images.

    Returns:
        dict: One record of the efficiency report (without ratios).
    """
    cfg = load_config(path, device)
    shape = image_shape(cfg, img_size)
    mem_batch = mem_batch or per_device_batch(cfg)
    record = dict(
        config=path,
        name=osp.splitext(osp.basename(path))[0],
        algorithm=cfg.model.type,
        image_shape=list(shape),
        batch_size=batch_size,
        mem_batch=mem_batch)
    results = {}
    for batch in (batch_size, 2 * batch_size):
        torch.manual_seed(seed)
        model, optim_wrapper = build_model_and_optim(cfg, device)
        data = make_batch(batch, shape, seed)

        def step(model=model, data=data, optim_wrapper=optim_wrapper):
            with DefaultScope.overwrite_default_scope('mmpretrain'):
                model.train_step(data, optim_wrapper)

        results[batch] = measure_step(
            step, model, optim_wrapper, device=device, iters=iters)
        if batch == batch_size:
            record['params_total'] = sum(p.numel() for p in model.parameters())
            backbone = getattr(model, 'backbone', None)
            record['params_encoder'] = sum(
                p.numel() for p in backbone.parameters()) if backbone else None
        del model, optim_wrapper
    small, large = results[batch_size], results[2 * batch_size]
    record['flops_per_image'] = small['flops'] / batch_size
    record['step_time'] = small['step_time']
    record['images_per_s'] = batch_size / small['step_time']
    record['resident_bytes'] = small['resident_bytes']
    record['peak_bytes_measured'] = {
        str(batch_size): small['peak_bytes'],
        str(2 * batch_size): large['peak_bytes']
    }
    per_op = None
    if small['timeline'] is not None and large['timeline'] is not None:
        per_op = extrapolate_timeline(small['timeline'], large['timeline'],
                                      batch_size, 2 * batch_size, mem_batch)
    if mem_batch in (batch_size, 2 * batch_size):
        peak = results[mem_batch]['peak_bytes']
        source = 'measured'
    elif per_op is not None:
        peak, source = per_op, 'extrapolated per operator'
    else:
        peak = extrapolate_memory(small['peak_bytes'], large['peak_bytes'],
                                  batch_size, 2 * batch_size, mem_batch)
        source = 'extrapolated from peaks'
    record['peak_bytes_at_mem_batch'] = peak
    record['peak_bytes_at_mem_batch_source'] = source
    return record
