# Copyright (c) OpenMMLab. All rights reserved.
"""What the measuring code takes from private torch and mmengine APIs
(``mim_plugins.benchmarks.private_apis``): each test fails when an upgrade
removes or changes it."""
import torch
import torch.nn.functional as F
from mmengine.optim import OptimWrapper

from mim_plugins.benchmarks.private_apis import (accumulating, attention_op,
                                                 cpu_attention_flop_formulas,
                                                 dispatch_mode_base,
                                                 storage_ref)


class OpLog(dispatch_mode_base()):
    """Every ATen operator, its arguments and output."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.ops.append((func, args, out))
        return out


def test_dispatch_mode_sees_aten_operators():
    with OpLog() as log:
        torch.ones(3) + 1
    names = [str(func) for func, _, _ in log.ops]
    assert 'aten.add.Tensor' in names, names


def test_storage_ref_follows_storages():
    a = torch.zeros(8)
    b = torch.zeros(8)
    ref = storage_ref(a)
    assert ref == storage_ref(a[2:]) and hash(ref) == hash(storage_ref(a[2:]))
    assert ref != storage_ref(b)
    assert not ref.expired()
    del a
    assert ref.expired()


def test_cpu_attention_kernels_have_flop_formulas():
    b, h, n, d = 2, 3, 5, 4
    q, k, v = (torch.randn(b, h, n, d, requires_grad=True) for _ in range(3))
    with OpLog() as log:
        F.scaled_dot_product_attention(q, k, v).sum().backward()
    ran = {func.overloadpacket for func, _, _ in log.ops}
    formulas = cpu_attention_flop_formulas()
    # torch runs exactly the kernels given formulas (forward and backward)
    assert set(formulas) <= ran, (set(formulas), ran)
    forward = formulas[
        torch.ops.aten._scaled_dot_product_flash_attention_for_cpu]
    # FlopCounterMode passes the shapes
    assert forward(q.shape, k.shape, v.shape) == 2 * (2 * b * h * n * n * d)


def test_attention_op_reads_the_kernels():
    b, h, n, d = 2, 3, 5, 4
    q, k, v = (torch.randn(b, h, n, d, requires_grad=True) for _ in range(3))
    with OpLog() as log:
        F.scaled_dot_product_attention(q, k, v).sum().backward()
        torch.randn(b, h, n, n).softmax(-1)  # eager attention's softmax
    found = [attention_op(f, a, o) for f, a, o in log.ops]
    found = [op for op in found if op is not None]
    # the forward keeps its float32 logsumexp (b, h, n) for backward
    assert found == [('sdpa', b * h * n * n, 4 * b * h * n),
                     ('sdpa_backward', b * h * n * n, 0),
                     ('eager', b * h * n * n, 0)]


def test_optim_wrapper_counters_exist():
    model = torch.nn.Linear(2, 1)
    wrapper = OptimWrapper(
        torch.optim.SGD(model.parameters(), lr=0.1), accumulative_counts=2)
    for name in ('_accumulative_counts', '_inner_count', '_max_counts'):
        assert hasattr(wrapper, name), \
            f'mmengine.optim.OptimWrapper has no {name} any more'
    with accumulating(wrapper, 3):
        assert wrapper._accumulative_counts == 3
    assert wrapper._accumulative_counts == 2
