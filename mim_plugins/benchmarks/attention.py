# Copyright (c) OpenMMLab. All rights reserved.
"""Attention memory for the planner: the bytes eager (unfused) attention
adds to a trace measured with fused scaled-dot-product attention."""
from typing import Dict, List, Sequence


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


def attention_summary(trace) -> Dict:
    """What attention a traced step (a ``StepTrace``) ran: ``detected`` is
    ``'sdpa'`` if it called a fused kernel, else ``'eager'`` if its modules
    compute attention themselves, else ``'none'``; with the number of
    calls."""
    kinds = [event[1] for event in trace.attention]
    calls = dict(sdpa=kinds.count('sdpa'), eager=kinds.count('eager'))
    detected = 'sdpa' if calls['sdpa'] else (
        'eager' if calls['eager'] else 'none')
    return dict(detected=detected, calls=calls)
