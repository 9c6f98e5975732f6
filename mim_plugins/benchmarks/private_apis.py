# Copyright (c) OpenMMLab. All rights reserved.
"""The private torch and mmengine APIs the measuring code relies on, one
function each.

The rest of :mod:`mim_plugins.benchmarks` uses public APIs only.  Each
function names the versions it was checked on, and
``tests/test_benchmarks/test_private_apis.py`` fails when an upgrade removes
or changes what it relies on.
"""
import contextlib
from typing import Dict, Optional

import torch

from .amp import leaf_optim_wrappers


def dispatch_mode_base() -> type:
    """``TorchDispatchMode``, the base class of a mode that sees every ATen
    operator (``FlopCounterMode`` and torch's memory tracker build on it).

    torch exports it from a private module only (checked on torch 2.14.1).
    """
    from torch.utils._python_dispatch import TorchDispatchMode
    return TorchDispatchMode


def storage_ref(tensor: torch.Tensor):
    """A weak reference to ``tensor``'s storage: equal and hashed alike for
    every tensor (view) of one storage, ``expired()`` once it is freed.

    ``StorageWeakRef`` is what torch's own memory tools use to follow
    storages; it is undocumented (checked on torch 2.14.1).
    """
    from torch.multiprocessing.reductions import StorageWeakRef
    return StorageWeakRef(tensor.untyped_storage())


def cpu_attention_flop_formulas() -> Dict:
    """FLOP formulas for torch's CPU flash-attention kernels, as a
    ``custom_mapping`` of ``FlopCounterMode``.

    ``FlopCounterMode`` has formulas for the CUDA attention kernels only; on
    CPU, ``scaled_dot_product_attention`` runs the kernels below and would
    count 0.  Relies on the private ATen operator names and on
    ``flop_counter``'s undocumented ``sdpa_flop_count`` and
    ``sdpa_backward_flop_count`` (checked on torch 2.14.1).
    """
    from torch.utils import flop_counter
    aten = torch.ops.aten
    return {
        aten._scaled_dot_product_flash_attention_for_cpu:
        lambda q, k, v, *args, out_shape=None, **kwargs: flop_counter.
        sdpa_flop_count(q, k, v),
        aten._scaled_dot_product_flash_attention_for_cpu_backward:
        lambda g, q, k, v, *args, out_shape=None, **kwargs: flop_counter.
        sdpa_backward_flop_count(g, q, k, v),
    }


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

    Relies on private ATen operator names, argument and output orders
    (checked on torch 2.14.1): a fused kernel takes
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


@contextlib.contextmanager
def accumulating(optim_wrapper, counts: int):
    """Let every wrapper accumulate gradients over ``counts`` iterations.

    The next ``counts`` calls of ``update_params`` form one accumulation
    cycle (the last one steps); the previous setting is restored on exit.
    mmengine sets ``accumulative_counts`` only when it builds a wrapper, so
    its private counters are set here (checked on mmengine 0.10.7).
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
