# Copyright (c) OpenMMLab. All rights reserved.
"""CUDA automatic mixed precision, reproduced on CPU for the memory
planner: the forward under CPU bf16 autocast with CUDA's float32 policy."""
import contextlib

import torch
from torch.overrides import TorchFunctionMode

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
