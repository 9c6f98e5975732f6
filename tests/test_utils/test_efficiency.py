# Copyright (c) OpenMMLab. All rights reserved.
import torch

from mim_plugins.utils.efficiency import (LiveTensorMemory, extrapolate_memory,
                                          measure_step, ratio, resident_bytes)


class ToyWrapper:
    """The part of an OptimWrapper the measurement uses."""

    def __init__(self, optimizer):
        self.optimizer = optimizer


def test_live_tensor_memory_counts_storages():
    tracker = LiveTensorMemory()
    with tracker:
        a = torch.ones(256)  # 1 KiB
        view = a[:10]  # a view: no new storage
        b = torch.zeros(512)  # 2 KiB
        assert tracker.current == 3 * 1024
        del b
        c = a * 2  # freeing b is seen at the next operator
        assert tracker.current == 2 * 1024
    assert tracker.peak == 3 * 1024
    assert view.shape == (10, ) and c.shape == (256, )


def test_measure_step_on_a_linear_model():
    torch.manual_seed(0)
    batch, d_in, d_out = 4, 8, 3
    model = torch.nn.Linear(d_in, d_out)
    optim = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(batch, d_in)

    def step():
        optim.zero_grad(set_to_none=False)
        model(x).pow(2).sum().backward()
        optim.step()

    res = measure_step(step, model, ToyWrapper(optim), iters=2)
    # forward addmm 2*B*in*out, backward: weight grad only (x needs no grad)
    assert res['flops'] == 2 * (2 * batch * d_in * d_out)
    n_params = d_in * d_out + d_out
    # parameters + gradients + SGD momentum buffers, fp32
    assert res['resident_bytes'] == 3 * 4 * n_params
    assert resident_bytes(model, ToyWrapper(optim)) == 3 * 4 * n_params
    # the step adds at least the (B, out) activations on top
    assert res['peak_bytes'] >= res['resident_bytes'] + 4 * batch * d_out
    assert res['step_time'] > 0


def test_extrapolation_and_ratio():
    # a + b * batch with a = 100, b = 10
    assert extrapolate_memory(180, 260, 8, 16, 512) == 100 + 10 * 512
    assert ratio(2.0, 4.0) == 0.5
    assert ratio(None, 4.0) is None and ratio(1.0, 0) is None


def test_cpu_attention_flops_are_counted():
    from mim_plugins.utils.efficiency import flop_counter_mode
    b, h, n, d = 2, 3, 5, 4
    q, k, v = (torch.randn(b, h, n, d, requires_grad=True) for _ in range(3))
    with flop_counter_mode() as counter:
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    # Q K^T and (softmax) V: two batched matmuls of 2 * n * n * d each
    assert counter.get_total_flops() == 2 * (2 * b * h * n * n * d)
    with flop_counter_mode() as counter:
        out.sum().backward()
    # flash-attention backward: scores recomputed, then dV, dP, dQ, dK
    assert counter.get_total_flops() == 5 * (2 * b * h * n * n * d)


def test_per_operator_extrapolation_finds_the_moving_peak():
    from mim_plugins.utils.efficiency import extrapolate_timeline

    # op 0: activations (5 bytes + 5 per image); op 1: optimizer step (12)
    small, large = [10, 12], [15, 12]  # batch 1 and batch 2
    assert extrapolate_timeline(small, large, 1, 2, 10) == 55
    # extrapolating the peaks (12 -> 15) would give 12 + 3 * 9 = 39
    assert extrapolate_memory(12, 15, 1, 2, 10) == 39
    assert extrapolate_timeline([1, 2], [1], 1, 2, 10) is None


def test_measure_step_timeline_matches_peak():
    model = torch.nn.Linear(4, 4)
    optim = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(3, 4)

    def step():
        optim.zero_grad()
        model(x).sum().backward()
        optim.step()

    res = measure_step(step, model, ToyWrapper(optim), iters=1)
    assert max(res['timeline']) == res['peak_bytes']
