# Copyright (c) OpenMMLab. All rights reserved.
"""Cost of one real training step: FLOPs, peak memory and time.

Used by ``tools/analysis_tools/benchmark_efficiency.py``.  Everything is
measured around the model's own ``train_step`` (forward, backward and
optimizer step, so methods with several backward/step calls per iteration
are measured as they train).
"""
import contextlib
import copy
import json
import math
import os.path as osp
import statistics
import time
from typing import (Callable, Dict, Iterable, List, Optional, Sequence, Union)

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


# Fused scaled-dot-product-attention kernels as the dispatcher runs them:
# the CPU flash kernel and CUDA's flash, memory-efficient and cuDNN kernels.
# Each backward is the same name + '_backward'.
SDPA_KERNELS = frozenset({
    '_scaled_dot_product_flash_attention_for_cpu',
    '_scaled_dot_product_flash_attention',
    '_scaled_dot_product_efficient_attention',
    '_scaled_dot_product_cudnn_attention',
    '_scaled_dot_product_fused_attention_overrideable',
})


def attention_op(func, args: tuple, out=None) -> Optional[tuple]:
    """Classify one dispatched operator as attention.

    The one function that relies on private ATen operator names, argument
    and output orders (checked with torch 2.14.1): a fused kernel takes
    ``(query, key, ...)`` with (batch, heads, tokens, channels) tensors and
    returns ``(output, logsumexp, ...)``; its backward takes
    ``(grad_out, query, key, ...)``.

    Args:
        func: The ATen operator.
        args (tuple): Its arguments.
        out: Its output (for the forward's logsumexp).

    Returns:
        tuple | None: ``(kind, elements, kernel_bytes)`` where ``kind`` is
        ``'sdpa'`` (a fused kernel's forward), ``'sdpa_backward'`` or
        ``'eager'`` (a softmax over a >= 4-D tensor: attention computed by
        the module's own code), ``elements`` is batch x heads x queries x
        keys and ``kernel_bytes`` what the fused forward keeps for backward
        besides its output (the logsumexp); None for any other operator.
    """
    packet = getattr(func, 'overloadpacket', None)
    name = getattr(packet, '__name__', '')
    kernel_bytes = 0
    if name in SDPA_KERNELS:
        kind, query, key = 'sdpa', args[0], args[1]
        if isinstance(out, (tuple, list)) and len(out) > 1 and \
                isinstance(out[1], torch.Tensor):
            kernel_bytes = out[1].numel() * out[1].element_size()
    elif name.endswith('_backward') and name[:-len('_backward')] in \
            SDPA_KERNELS:
        kind, query, key = 'sdpa_backward', args[1], args[2]
    elif name == '_softmax' and args[0].dim() >= 4:
        return 'eager', args[0].numel(), 0
    else:
        return None
    return kind, query.numel() // query.shape[-1] * key.shape[-2], \
        kernel_bytes


class StepTrace(LiveTensorMemory):
    """:class:`LiveTensorMemory` that also notes, by operator index, where
    attention runs (:func:`attention_op`) and where optimizers step.

    Attributes:
        attention (list): ``(index, kind, elements, kernel_bytes)`` per
            attention op (:func:`attention_op`).
        optimizer_steps (list): ``[first, end, foreach_bytes]`` per
            optimizer step: the operators ``first <= i < end`` run inside it;
            ``foreach_bytes`` from :func:`cuda_foreach_temporary_bytes`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.attention: List[tuple] = []
        self.optimizer_steps: List[list] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = super().__torch_dispatch__(func, types, args, kwargs)
        op = attention_op(func, args, out)
        if op is not None:
            self.attention.append((len(self.timeline) - 1, *op))
        return out

    @contextlib.contextmanager
    def noting_steps(self, optim_wrapper):
        """Note the operator range of every optimizer step inside."""
        handles = []

        def pre_hook(optimizer, args, kwargs):
            self.optimizer_steps.append([
                len(self.timeline),
                len(self.timeline),
                cuda_foreach_temporary_bytes(optimizer)
            ])

        def post_hook(optimizer, args, kwargs):
            self.optimizer_steps[-1][1] = len(self.timeline)

        for wrapper in leaf_optim_wrappers(optim_wrapper):
            handles.append(wrapper.optimizer.register_step_pre_hook(pre_hook))
            handles.append(
                wrapper.optimizer.register_step_post_hook(post_hook))
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()


def memory_trace(step: Callable[[], None],
                 model: torch.nn.Module,
                 optim_wrapper,
                 steps: int = 1) -> StepTrace:
    """Live bytes after every operator of ``steps`` consecutive steps, with
    the attention operators and optimizer steps among them.

    Parameters, buffers, gradients and optimizer state that exist before the
    first step are counted from the start.
    """
    tracker = StepTrace()
    tracker.track(model.parameters())
    tracker.track(model.buffers())
    tracker.track(p.grad for p in model.parameters())
    tracker.track(optimizer_tensors(optim_wrapper))
    tracker.timeline.append(tracker.current)
    with tracker.noting_steps(optim_wrapper), tracker:
        for _ in range(steps):
            step()
    return tracker


def memory_timeline(step: Callable[[], None],
                    model: torch.nn.Module,
                    optim_wrapper,
                    steps: int = 1) -> List[int]:
    """Live bytes after every operator of ``steps`` consecutive steps (the
    timeline of :func:`memory_trace`)."""
    return memory_trace(step, model, optim_wrapper, steps).timeline


def cuda_foreach_temporary_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Parameter-sized temporaries of one multi-tensor Adam/AdamW step on
    CUDA.

    On CUDA, torch's Adam and AdamW default to the multi-tensor (``foreach``)
    step unless the optimizer sets ``foreach=False`` or ``fused=True``. Per
    parameter group it allocates ``sqrt(exp_avg_sq)`` of all the group's
    parameters at once, one more copy of the gradients with ``maximize``
    and one with Adam's (not AdamW's) weight decay (torch 2.14.1,
    ``torch/optim/adam.py``, ``_multi_tensor_adam``). On CPU the default is
    the single-tensor step, whose temporaries (one parameter at a time) the
    CPU measurement sees. Groups step one after another, so the largest
    group counts. Other optimizers: 0.

    Returns:
        int: Bytes, for the parameters that have a gradient now.
    """
    if not isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
        return 0
    decoupled = isinstance(optimizer, torch.optim.AdamW)
    peak = 0
    for group in optimizer.param_groups:
        if group.get('fused') or group.get('foreach') is False or \
                group.get('differentiable'):
            continue
        nbytes = sum(p.numel() * p.element_size() for p in group['params']
                     if p.grad is not None)
        l2_decay = group.get('weight_decay', 0) and not group.get(
            'decoupled_weight_decay', decoupled)
        copies = 1 + bool(group.get('maximize')) + bool(l2_decay)
        peak = max(peak, copies * nbytes)
    return peak


def eager_attention_bytes(elements: int, precision: str) -> tuple:
    """Bytes of eager attention over ``elements`` scores (batch x heads x
    queries x keys), per element size, as timm's and mmpretrain's unfused
    attention compute it: ``softmax(q @ k^T * scale) @ v``.

    ``fp32``: the scores and the probabilities exist together in the
    forward (8 bytes per score); the probabilities stay for backward, saved
    by the softmax and the matmul with ``v`` (4). Under CUDA AMP the scores
    are fp16, the softmax runs in float32 (CUDA autocast's policy) and the
    matmul with ``v`` keeps an fp16 copy: forward 2 + 4 + 4 = 10 (fp16
    scores, their float32 cast, float32 probabilities), kept 4 + 2 = 6. In
    backward the softmax's backward holds the float32 probabilities, the
    gradient of the probabilities and the gradient of the scores (4 + 4 + 4
    = 12; under AMP the fp16 copy is already freed by the matmul's
    backward).

    Args:
        elements (int): batch x heads x queries x keys.
        precision (str): ``'fp32'`` or ``'amp'``.

    Returns:
        tuple: ``(forward, kept, backward)`` bytes: at the attention's
        forward, between its forward and backward, at its backward.
    """
    if precision == 'amp':
        return 10 * elements, 6 * elements, 12 * elements
    return 8 * elements, 4 * elements, 12 * elements


def eager_attention_extra(n_ops: int, attention: Sequence[tuple],
                          precision: str) -> List[int]:
    """Bytes eager attention adds after each operator of a trace whose
    attention ran in a fused kernel.

    Every fused forward (``attention`` events of :class:`StepTrace`) is
    paired with its backward: autograd runs the backward of the latest
    unpaired forward of the same shape first. From the forward to the
    backward the probabilities are kept (:func:`eager_attention_bytes`) in
    place of the fused kernel's logsumexp; the output, kept by both, stays.
    A forward without backward (no gradient) adds its forward bytes only.

    Returns:
        list: Bytes to add, one per operator.
    """
    diff = [0] * (n_ops + 1)  # difference array of the kept bytes
    point = [0] * n_ops  # bytes at the forward and backward operators
    open_calls = []
    for index, kind, elements, kernel_bytes in attention:
        if kind == 'sdpa':
            open_calls.append((index, elements, kernel_bytes))
        elif kind == 'sdpa_backward':
            match = [i for i, c in enumerate(open_calls) if c[1] == elements]
            if not match:
                continue
            start, _, kernel_bytes = open_calls.pop(match[-1])
            forward, kept, backward = eager_attention_bytes(
                elements, precision)
            point[start] += forward - kept
            point[index] += backward - kept
            diff[start] += kept - kernel_bytes
            diff[index + 1] -= kept - kernel_bytes
    for start, elements, _ in open_calls:
        point[start] += eager_attention_bytes(elements, precision)[0]
    extra, kept = [], 0
    for i in range(n_ops):
        kept += diff[i]
        extra.append(kept + point[i])
    return extra


def planned_timeline(trace: StepTrace, attention: str,
                     precision: str) -> List[int]:
    """A measured CPU trace as the planner predicts it on CUDA.

    Adds the multi-tensor optimizer temporaries inside every optimizer step
    and, for ``attention='eager'``, the eager attention of every fused call
    (:func:`eager_attention_extra`); ``'sdpa'`` keeps the fused kernels as
    measured.
    """
    if attention not in ('sdpa', 'eager'):
        raise ValueError(f"attention must be 'sdpa' or 'eager', got "
                         f'{attention!r}')
    timeline = list(trace.timeline)
    for first, end, nbytes in trace.optimizer_steps:
        for i in range(first, end):
            timeline[i] += nbytes
    if attention == 'eager':
        extra = eager_attention_extra(
            len(timeline), trace.attention, precision)
        timeline = [t + e for t, e in zip(timeline, extra)]
    return timeline


def attention_summary(trace: StepTrace) -> Dict:
    """What attention a traced step ran: ``detected`` is ``'sdpa'`` if it
    called a fused kernel, else ``'eager'`` if its modules compute
    attention themselves, else ``'none'``; with the number of calls."""
    kinds = [event[1] for event in trace.attention]
    calls = dict(sdpa=kinds.count('sdpa'), eager=kinds.count('eager'))
    detected = 'sdpa' if calls['sdpa'] else (
        'eager' if calls['eager'] else 'none')
    return dict(detected=detected, calls=calls)


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


# The attention paths the planner predicts: fused scaled-dot-product
# attention as measured, and eager attention modelled on top of it.
ATTENTION_PATHS = ('sdpa', 'eager')


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


# --------------------------------------------------------------------------
# GPU calibration: what ``tools/analysis_tools/gpu_memory_check.py`` measures
# on CUDA against the planner's prediction, and the margin the planner takes
# from it.
# --------------------------------------------------------------------------

CALIBRATION_FORMAT = 'mim_plugins.gpu_memory_check/1'


class CalibrationError(ValueError):
    """A calibration file the planner cannot use."""


def calibration_run(name: str,
                    precision: str,
                    attention: str,
                    batch: int,
                    predicted_bytes: float,
                    max_allocated: Optional[float] = None,
                    max_reserved: Optional[float] = None) -> Dict:
    """One GPU run beside the planner's prediction.

    Args:
        name (str): Config name (file name without ``.py``).
        precision (str): ``'fp32'`` or ``'amp'``.
        attention (str): The attention path the run used.
        batch (int): Per-device batch.
        predicted_bytes (float): The planner's predicted peak (no margin).
        max_allocated (float, optional): ``torch.cuda.max_memory_allocated``
            of the run; None if it ran out of memory.
        max_reserved (float, optional): ``torch.cuda.max_memory_reserved``.

    Returns:
        dict: The run, in GiB, with ``allocated_ratio`` and
        ``reserved_ratio`` (measured / predicted) and ``oom``.
    """
    oom = max_allocated is None or max_reserved is None
    run = dict(
        name=name,
        precision=precision,
        attention=attention,
        batch=int(batch),
        predicted_peak_gib=predicted_bytes / GIB,
        oom=oom)
    if not oom:
        run.update(
            max_allocated_gib=max_allocated / GIB,
            max_reserved_gib=max_reserved / GIB,
            allocated_ratio=max_allocated / predicted_bytes,
            reserved_ratio=max_reserved / predicted_bytes)
    return run


def load_calibration(paths: Union[str, Sequence[str]],
                     wanted: Iterable[tuple]) -> Dict[tuple, Dict]:
    """The measured margin for every ``(name, precision)`` in ``wanted``.

    For each, the ratio is the largest ``reserved_ratio`` of its runs that
    did not run out of memory, and ``context_gib`` the CUDA context measured
    beside them (device memory in use that ``max_memory_reserved`` does not
    count).

    Args:
        paths (str | Sequence[str]): JSON files of ``gpu_memory_check.py``.
        wanted (Iterable[tuple]): ``(config name, precision)`` pairs.

    Returns:
        dict: ``{(name, precision): dict(ratio, context_gib, device)}``.

    Raises:
        CalibrationError: A file that is not JSON or not a report of
            ``gpu_memory_check.py``, a run with a missing or non-positive
            figure, or a wanted pair without a run.
    """
    paths = [paths] if isinstance(paths, str) else list(paths)
    runs = []
    for path in paths:
        hint = ('expected the JSON written by '
                'tools/analysis_tools/gpu_memory_check.py')
        try:
            with open(path) as f:
                report = json.load(f)
        except (OSError, ValueError) as err:
            raise CalibrationError(
                f'--calibration {path}: cannot read it ({err}); {hint}.')
        if not isinstance(report, dict) or \
                report.get('format') != CALIBRATION_FORMAT:
            found = report.get('format') if isinstance(report, dict) else \
                type(report).__name__
            raise CalibrationError(
                f'--calibration {path}: format {found!r}, expected '
                f'{CALIBRATION_FORMAT!r}; {hint}.')
        for key in ('device', 'context_gib', 'runs'):
            if key not in report:
                raise CalibrationError(
                    f'--calibration {path}: no {key!r}; {hint}.')
        context = report['context_gib']
        if not isinstance(context, (int, float)) or context < 0:
            raise CalibrationError(
                f'--calibration {path}: context_gib must be a number >= 0, '
                f'got {context!r}.')
        for i, run in enumerate(report['runs']):
            keys = ('name', 'precision', 'batch', 'oom') + (
                () if run.get('oom') else ('reserved_ratio', ))
            missing = [k for k in keys if k not in run]
            if missing:
                raise CalibrationError(
                    f'--calibration {path}: run {i} has no {missing}.')
            ratio_ = run.get('reserved_ratio')
            if not run['oom'] and not (isinstance(ratio_, (int, float))
                                       and 0 < ratio_ < float('inf')):
                raise CalibrationError(
                    f'--calibration {path}: run {i} ({run["name"]}) has '
                    f'reserved_ratio {ratio_!r}; it must be a positive '
                    'number.')
            runs.append((run, report['device'], context))
    measured = sorted({(r['name'], r['precision'])
                       for r, _, _ in runs if not r['oom']})
    result = {}
    for name, precision in wanted:
        fits = [(r, dev, ctx) for r, dev, ctx in runs
                if not r['oom'] and (r['name'], r['precision']) == (name,
                                                                    precision)]
        if not fits:
            have = ', '.join(f'{n} ({p})' for n, p in measured) or 'none'
            raise CalibrationError(
                f'--calibration {", ".join(paths)}: no GPU run of {name} '
                f'({precision}) that fitted; runs there: {have}. Run '
                'tools/analysis_tools/gpu_memory_check.py on that config '
                '(--amp for amp) or leave --calibration out.')
        result[(name, precision)] = dict(
            ratio=max(r['reserved_ratio'] for r, _, _ in fits),
            context_gib=max(ctx for _, _, ctx in fits),
            device=', '.join(sorted({dev
                                     for _, dev, _ in fits})))
    return result
