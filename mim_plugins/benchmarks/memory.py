# Copyright (c) OpenMMLab. All rights reserved.
"""Live tensor memory of a training step, measured on CPU at the dispatcher
level, and its extrapolation to other batch sizes."""
from typing import Dict, Iterable, List, Optional, Sequence

import torch

from .private_apis import dispatch_mode_base, storage_ref


def output_tensors(out) -> list:
    """The tensors of an operator's output (a tensor, or tuples and lists of
    them)."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for item in out for t in output_tensors(item)]
    return []


class LiveTensorMemory(dispatch_mode_base()):
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
        self._live: Dict[object, int] = {}  # storage_ref -> bytes
        self.current = 0
        self.peak = 0
        # live bytes after every operator, for per-operator extrapolation
        self.timeline: List[int] = []

    def track(self, tensors: Iterable) -> None:
        """Count the storages of ``tensors`` (ignores non-tensors)."""
        for t in tensors:
            if not isinstance(t, torch.Tensor) or t.device.type == 'meta':
                continue
            ref = storage_ref(t)
            if ref in self._live:
                continue
            nbytes = t.untyped_storage().nbytes()
            self._live[ref] = nbytes
            self.current += nbytes
        self.peak = max(self.peak, self.current)

    def sweep(self) -> None:
        """Forget storages that have been freed."""
        for ref, nbytes in list(self._live.items()):
            if ref.expired():
                del self._live[ref]
                self.current -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.sweep()
        self.track(output_tensors(out))
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
        ref = storage_ref(t)
        if ref not in seen:
            seen.add(ref)
            total += t.untyped_storage().nbytes()
    return total


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
