# Copyright (c) OpenMMLab. All rights reserved.
"""One training step traced operator by operator (live bytes, attention
calls, optimizer steps) and the trace as the planner predicts it on CUDA."""
import contextlib
from typing import Callable, List

import torch

from .amp import leaf_optim_wrappers
from .attention import eager_attention_extra
from .memory import LiveTensorMemory, optimizer_tensors
from .private_apis import attention_op


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
