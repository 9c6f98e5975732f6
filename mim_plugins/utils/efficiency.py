# Copyright (c) OpenMMLab. All rights reserved.
"""Cost of one real training step: FLOPs, peak memory and time.

Used by ``tools/analysis_tools/benchmark_efficiency.py``.  Everything is
measured around the model's own ``train_step`` (forward, backward and
optimizer step, so methods with several backward/step calls per iteration
are measured as they train).
"""
import contextlib
import copy
import math
import os.path as osp
import statistics
import time
from typing import (Callable, Dict, Iterable, List, Optional, Sequence,
                    Union)

import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from torch.multiprocessing.reductions import StorageWeakRef
from torch.overrides import TorchFunctionMode
from torch.utils import flop_counter
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

_aten = torch.ops.aten
# FlopCounterMode has formulas for the CUDA attention kernels only; on CPU,
# scaled_dot_product_attention runs the kernels below and would count 0.
ATTENTION_FLOPS = {
    _aten._scaled_dot_product_flash_attention_for_cpu:
    lambda q, k, v, *args, out_shape=None, **kwargs: flop_counter.
    sdpa_flop_count(q, k, v),
    _aten._scaled_dot_product_flash_attention_for_cpu_backward:
    lambda g, q, k, v, *args, out_shape=None, **kwargs: flop_counter.
    sdpa_backward_flop_count(g, q, k, v),
}


def flop_counter_mode() -> FlopCounterMode:
    """A silent ``FlopCounterMode`` that also counts CPU attention."""
    return FlopCounterMode(display=False, custom_mapping=ATTENTION_FLOPS)


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


class LiveTensorMemory(TorchDispatchMode):
    """Track the bytes of live tensor storages at the dispatcher level.

    Every tensor produced by an operator is counted once per storage until the
    storage is freed; tensors that exist before (parameters, buffers,
    optimizer state) are registered with :meth:`track`.  ``peak`` is the
    largest total seen.  Unlike ``torch.distributed._tools.mem_tracker``,
    this needs no module hooks, so it works with frozen parameters (MAE's
    fixed position embedding) and with any ``train_step``.

    Storages are counted by their size, so views cost nothing and the figure
    is what an allocator without caching or fragmentation would hold (on
    CUDA, ``torch.cuda.max_memory_allocated`` is the reference).
    """

    def __init__(self) -> None:
        super().__init__()
        self._live: Dict[int, tuple] = {}
        self.current = 0
        self.peak = 0
        # live bytes after every operator, for per-operator extrapolation
        self.timeline: List[int] = []

    def track(self, tensors: Iterable) -> None:
        """Count the storages of ``tensors`` (ignores non-tensors)."""
        for t in tensors:
            if not isinstance(t, torch.Tensor) or t.device.type == 'meta':
                continue
            storage = t.untyped_storage()
            key = storage._cdata
            if key in self._live:
                continue
            nbytes = storage.nbytes()
            self._live[key] = (StorageWeakRef(storage), nbytes)
            self.current += nbytes
        self.peak = max(self.peak, self.current)

    def sweep(self) -> None:
        """Forget storages that have been freed."""
        for key, (ref, nbytes) in list(self._live.items()):
            if ref.expired():
                del self._live[key]
                self.current -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.sweep()
        self.track(tree_flatten(out)[0])
        self.timeline.append(self.current)
        return out


def optimizer_tensors(optim_wrapper) -> list:
    """All tensors held in the optimizer state(s) of a wrapper."""
    optimizers = []
    if hasattr(optim_wrapper, 'optim_wrappers'):  # OptimWrapperDict
        for wrapper in optim_wrapper.optim_wrappers.values():
            optimizers.append(wrapper.optimizer)
    elif hasattr(optim_wrapper, 'optimizers'):  # wrappers with a list
        optimizers.extend(optim_wrapper.optimizers)
    else:
        optimizers.append(optim_wrapper.optimizer)
    tensors = []
    for optim in optimizers:
        for state in optim.state.values():
            tensors.extend(v for v in state.values()
                           if isinstance(v, torch.Tensor))
    return tensors


def resident_bytes(model: torch.nn.Module, optim_wrapper) -> int:
    """Bytes of parameters, buffers, gradients and optimizer state."""
    seen, total = set(), 0
    tensors = list(model.parameters()) + list(model.buffers())
    tensors += [p.grad for p in model.parameters() if p.grad is not None]
    tensors += optimizer_tensors(optim_wrapper)
    for t in tensors:
        storage = t.untyped_storage()
        if storage._cdata not in seen:
            seen.add(storage._cdata)
            total += storage.nbytes()
    return total


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


def extrapolate_memory(peak_small: float, peak_large: float, batch_small: int,
                       batch_large: int, batch: int) -> float:
    """Peak memory at ``batch`` from two measured batch sizes.

    Activation memory grows linearly with the batch while parameters and
    optimizer state do not, so the peak is ``a + b * batch``.

    Args:
        peak_small (float): Peak bytes measured at ``batch_small``.
        peak_large (float): Peak bytes measured at ``batch_large``.
        batch_small (int): The smaller batch size.
        batch_large (int): The larger batch size (> ``batch_small``).
        batch (int): The batch size to extrapolate to.

    Returns:
        float: The extrapolated peak in bytes.
    """
    if batch_large <= batch_small:
        raise ValueError('batch_large must be larger than batch_small, got '
                         f'{batch_small} and {batch_large}')
    slope = (peak_large - peak_small) / (batch_large - batch_small)
    return peak_small + slope * (batch - batch_small)


def extrapolate_timeline(timeline_small: Sequence[int],
                         timeline_large: Sequence[int], batch_small: int,
                         batch_large: int, batch: int) -> Optional[float]:
    """Peak memory at ``batch`` from two per-operator live-memory timelines.

    Where the peak of a step happens can change with the batch: at small
    batches the optimizer step (parameters, gradients, optimizer state and
    its temporaries) dominates, at real batches the activations at the end
    of the forward pass.  Extrapolating the two peaks would miss that, so
    every operator's live memory is extrapolated linearly on its own and the
    maximum is taken.  The two runs must execute the same operators (same
    model, same number of masked tokens).

    Returns:
        float | None: The peak in bytes, or None if the timelines differ in
        length.
    """
    if len(timeline_small) != len(timeline_large) or not timeline_small:
        return None
    small = torch.tensor(timeline_small, dtype=torch.float64)
    large = torch.tensor(timeline_large, dtype=torch.float64)
    slope = (large - small) / (batch_large - batch_small)
    return float((small + slope * (batch - batch_small)).max())


def ratio(value: Optional[float],
          baseline: Optional[float]) -> Optional[float]:
    """``value / baseline`` or None when either is missing or zero."""
    if not value or not baseline:
        return None
    return value / baseline


def load_config(path: Union[str, Config], device: str = 'cpu') -> Config:
    """Load a config (or copy a loaded one); AMP becomes fp32 on CPU (no
    bf16 kernels measured)."""
    cfg = Config.fromfile(path) if isinstance(path, str) else \
        copy.deepcopy(path)
    wrapper = cfg.optim_wrapper
    if device == 'cpu' and wrapper.get('type') == 'AmpOptimWrapper':
        # fp32 on CPU: the comparison must not depend on bf16 kernels
        wrapper.type = 'OptimWrapper'
        wrapper.pop('loss_scale', None)
        wrapper.pop('dtype', None)
    return cfg


def build_model_and_optim(cfg: Config, device: str = 'cpu'):
    """Build the model (initialised, train mode) and its optim wrapper."""
    from mmpretrain.registry import MODELS
    model_cfg = cfg.model.copy()
    model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(model_cfg)
        model.init_weights()
        model = model.to(device).train()
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    return model, optim_wrapper


def image_shape(cfg: Config, img_size: Optional[int] = None) -> tuple:
    """(C, H, W) of the config's inputs."""
    channels = len(cfg.get('data_preprocessor', {}).get('mean', [0, 0, 0]))
    size = img_size or cfg.model.get('backbone', {}).get('img_size', 224)
    return channels, size, size


def make_batch(batch_size: int, shape: tuple, seed: int = 0) -> dict:
    """Random uint8 images and empty data samples, as a dataloader gives."""
    from mmpretrain.structures import DataSample
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(
        0, 256, (batch_size, *shape), generator=gen, dtype=torch.uint8)
    return dict(
        inputs=images, data_samples=[DataSample() for _ in range(batch_size)])


def per_device_batch(cfg: Config) -> int:
    """The per-device batch size of the config's training dataloader."""
    return int(cfg.get('train_dataloader', {}).get('batch_size', 8))


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


# --------------------------------------------------------------------------
# Memory planner: the largest per-device batch that fits a memory budget.
# --------------------------------------------------------------------------

GIB = 1024**3

# Ops that CUDA autocast runs in float32 (torch's CUDA "fp32" cast policy),
# by the name they have as torch functions or Tensor methods.  CPU autocast
# runs most of them in bf16 instead, which would under-count CUDA AMP.
CUDA_AUTOCAST_FP32_OPS = frozenset({
    'acos', 'asin', 'cosh', 'erfinv', 'exp', 'expm1', 'log', 'log10', 'log2',
    '__pow__', '__rpow__', 'log1p', 'reciprocal', 'rsqrt', 'sinh', 'tan',
    'pow', 'softplus', 'layer_norm', 'group_norm', 'norm', 'nll_loss',
    'mse_loss', 'l1_loss', 'smooth_l1_loss', 'huber_loss', 'cross_entropy',
    'binary_cross_entropy_with_logits', 'cosine_similarity', 'softmax',
    'log_softmax', 'softmin', 'sum', 'prod', 'cumsum', 'cumprod', 'dist',
    'pdist', 'cdist', 'renorm', 'logsumexp', 'kl_div', 'normalize'
})


class SavedActivationMeter:
    """Peak bytes of activations saved for backward (parameters excluded).

    A saved tensor counts from its packing until its graph is freed, so
    under ``with meter.hooks():`` a BIM step shows one block's graph at a
    time.

    Args:
        model (torch.nn.Module): Its parameters are not counted.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.params = {
            p.untyped_storage().data_ptr()
            for p in model.parameters()
        }
        self.live = {}
        self.current = self.peak = 0

    def _release(self, ptr):
        count, nbytes = self.live[ptr]
        if count == 1:
            del self.live[ptr]
            self.current -= nbytes
        else:
            self.live[ptr] = (count - 1, nbytes)

    def pack(self, tensor):
        storage = tensor.untyped_storage()
        ptr = storage.data_ptr()
        if ptr in self.params:
            return tensor
        count, nbytes = self.live.get(ptr, (0, storage.nbytes()))
        if count == 0:
            self.current += nbytes
            self.peak = max(self.peak, self.current)
        self.live[ptr] = (count + 1, nbytes)
        meter = self

        class Handle:

            def __init__(self):
                self.tensor = tensor

            def __del__(self):
                meter._release(ptr)

        return Handle()

    @staticmethod
    def unpack(packed):
        return packed.tensor if hasattr(packed, 'tensor') else packed

    def hooks(self):
        return torch.autograd.graph.saved_tensors_hooks(self.pack, self.unpack)


class CudaAutocastPolicy(TorchFunctionMode):
    """Run CUDA autocast's float32 ops in float32 under CPU autocast.

    CPU autocast (bf16) and CUDA autocast (fp16) both run matmuls,
    convolutions and attention in 16 bits, but CUDA keeps normalisation,
    softmax, reductions and losses in float32 while CPU autocast leaves them
    in bf16.  Inside this mode, a call to one of
    :data:`CUDA_AUTOCAST_FP32_OPS` gets its floating-point tensors cast to
    float32 and runs with autocast off, as on CUDA, so the bytes measured on
    CPU are those of a CUDA AMP step (bf16 and fp16 have the same size).
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, '__name__', '')
        if name not in CUDA_AUTOCAST_FP32_OPS or \
                not torch.is_autocast_enabled('cpu'):
            return func(*args, **kwargs)

        def to_fp32(x):
            if isinstance(x, torch.Tensor) and x.is_floating_point():
                return x.float()
            return x

        args = tuple(to_fp32(a) for a in args)
        kwargs = {k: to_fp32(v) for k, v in kwargs.items()}
        with torch.autocast('cpu', enabled=False):
            return func(*args, **kwargs)


def leaf_optim_wrappers(optim_wrapper) -> list:
    """The plain optimizer wrappers inside ``optim_wrapper`` (BIM: one per
    block)."""
    if hasattr(optim_wrapper, 'optim_wrappers'):  # OptimWrapperDict
        return list(optim_wrapper.optim_wrappers.values())
    return [optim_wrapper]


def use_cpu_autocast(optim_wrapper, dtype: torch.dtype = torch.bfloat16):
    """Make every wrapper's ``optim_context`` autocast its forward on CPU.

    mmengine's ``AmpOptimWrapper`` needs CUDA; on CPU the measurement keeps
    the fp32 wrapper (fp32 master weights, as AMP has) and autocasts the
    forward exactly where ``AmpOptimWrapper.optim_context`` would, with
    CUDA's float32 policy (:class:`CudaAutocastPolicy`).  The loss scaler is
    left out: it works in place and holds a few scalars.
    """
    for wrapper in leaf_optim_wrappers(optim_wrapper):
        base = wrapper.optim_context

        @contextlib.contextmanager
        def optim_context(model, base=base):
            with base(model), torch.autocast('cpu', dtype=dtype), \
                    CudaAutocastPolicy():
                yield

        wrapper.optim_context = optim_context


@contextlib.contextmanager
def accumulating(optim_wrapper, counts: int):
    """Let every wrapper accumulate gradients over ``counts`` iterations.

    The next ``counts`` calls of ``update_params`` form one accumulation
    cycle (the last one steps); the previous setting is restored on exit.
    """
    wrappers = leaf_optim_wrappers(optim_wrapper)
    saved = [(w._accumulative_counts, w._inner_count, w._max_counts)
             for w in wrappers]
    for w in wrappers:
        w._accumulative_counts, w._inner_count, w._max_counts = counts, 0, -1
    try:
        yield
    finally:
        for w, (acc, inner, max_counts) in zip(wrappers, saved):
            w._accumulative_counts = acc
            w._inner_count = inner
            w._max_counts = max_counts


def memory_timeline(step: Callable[[], None],
                    model: torch.nn.Module,
                    optim_wrapper,
                    steps: int = 1) -> List[int]:
    """Live bytes after every operator of ``steps`` consecutive steps.

    Parameters, buffers, gradients and optimizer state that exist before the
    first step are counted from the start.
    """
    tracker = LiveTensorMemory()
    tracker.track(model.parameters())
    tracker.track(model.buffers())
    tracker.track(p.grad for p in model.parameters())
    tracker.track(optimizer_tensors(optim_wrapper))
    tracker.timeline.append(tracker.current)
    with tracker:
        for _ in range(steps):
            step()
    return tracker.timeline


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


class MemoryBudgetError(ValueError):
    """A memory budget too small for one image per step."""


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
        dict: ``step`` and ``accumulate`` (the two timelines),
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
    one_step = memory_timeline(step, model, optim_wrapper)
    with accumulating(optim_wrapper, accumulation_steps):
        cycle = memory_timeline(step, model, optim_wrapper, accumulation_steps)
    return dict(
        step=one_step,
        accumulate=cycle,
        resident_bytes=float(resident),
        grad_bytes=float(grad_bytes))


def measure_memory_lines(path: str,
                         precision: str = 'fp32',
                         batches: Sequence[int] = (2, 4),
                         img_size: Optional[int] = None,
                         accumulation_steps: int = 3,
                         seed: int = 0) -> Dict:
    """What the memory planner needs for one config, measured on CPU.

    :func:`measure_timelines` at two batches, turned into
    :class:`MemoryLines` for a plain step and for an accumulation cycle.

    Args:
        path (str): Config path.
        precision (str): ``'fp32'`` or ``'amp'``. Defaults to ``'fp32'``.
        batches (Sequence[int]): Two batch sizes. Defaults to (2, 4).
        img_size (int, optional): Image size; defaults to the backbone's.
        accumulation_steps (int): Iterations of the measured accumulation
            cycle. Defaults to 3.
        seed (int): Seed of the weights and the random images.

    Returns:
        dict: ``step`` and ``accumulate`` (:class:`MemoryLines`),
        ``resident_bytes``, ``grad_bytes``, ``config_batch`` (the config's
        per-device batch), ``accumulative_counts`` (the config's) and
        ``peak_bytes_measured`` (per measured batch).
    """
    small, large = batches
    cfg = load_config(path, 'cpu')
    runs = {
        b: measure_timelines(cfg, b, precision, img_size, accumulation_steps,
                             seed)
        for b in (small, large)
    }
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
        grad_bytes=runs[small]['grad_bytes'],
        peak_bytes_measured={
            str(b): float(max(runs[b]['step']))
            for b in (small, large)
        },
        step=MemoryLines(runs[small]['step'], runs[large]['step'], small,
                         large),
        accumulate=MemoryLines(runs[small]['accumulate'],
                               runs[large]['accumulate'], small, large))


def usable_bytes(budget_gib: float, margin_gib: float,
                 margin_frac: float) -> float:
    """Bytes the planner lets tensors use out of a ``budget_gib`` device:
    ``budget * (1 - margin_frac) - margin_gib``."""
    return (budget_gib * (1 - margin_frac) - margin_gib) * GIB


def min_budget_gib(peak_bytes: float, margin_gib: float,
                   margin_frac: float) -> float:
    """The device memory (GiB, rounded up to 0.01) in which ``peak_bytes``
    fits with the margin (the inverse of :func:`usable_bytes`)."""
    gib = (peak_bytes / GIB + margin_gib) / (1 - margin_frac)
    return math.ceil(gib * 100 - 1e-9) / 100


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
                ddp: bool = False) -> Dict:
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
            ``DistributedDataParallel`` (one more copy of the trainable
            parameters' gradients, held for the whole run). Defaults to
            False (one process, no DDP).

    Returns:
        dict: ``max_batch`` (largest batch of one plain step),
        ``batch`` and ``accumulative_counts`` reaching the config's
        per-device batch (``train_dataloader.batch_size`` and
        ``optim_wrapper.accumulative_counts``), ``effective_batch``,
        ``predicted_peak_gib`` of that plan, ``usable_gib``.

    Raises:
        MemoryBudgetError: If not even one image per step fits.
    """
    usable = usable_bytes(budget_gib, margin_gib, margin_frac)
    if ddp:
        usable -= lines['grad_bytes']
    target = lines['config_batch'] * lines['accumulative_counts']
    max_batch = lines['step'].max_batch(usable)
    if max_batch >= target:
        batch, counts, peak = target, 1, lines['step'].peak(target)
    else:
        acc_batch = lines['accumulate'].max_batch(usable)
        if acc_batch < 1:
            needed = lines['accumulate'].peak(1) + ddp * lines['grad_bytes']
            resident = lines['resident_bytes']
            raise MemoryBudgetError(
                f"{budget_gib:g} GiB is too small for {lines['name']} "
                f"({lines['precision']}): parameters, buffers and optimizer "
                f'state take {resident / GIB:.3g} GiB, one image per step '
                f'with accumulated gradients peaks at {needed / GIB:.3g} '
                f'GiB; with the margin ({margin_gib:g} GiB + '
                f'{margin_frac:.0%}) it needs at least '
                f'{min_budget_gib(needed, margin_gib, margin_frac):g} GiB.')
        batch, counts = accumulation_plan(target, acc_batch)
        peak = lines['accumulate'].peak(batch)
    return dict(
        budget_gib=budget_gib,
        usable_gib=usable / GIB,
        max_batch=max_batch,
        batch=batch,
        accumulative_counts=counts,
        effective_batch=batch * counts,
        predicted_peak_gib=peak / GIB)
