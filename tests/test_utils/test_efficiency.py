# Copyright (c) OpenMMLab. All rights reserved.
import pytest
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


def test_memory_lines_largest_batch_is_exact_and_monotonic():
    from mim_plugins.utils.efficiency import MemoryLines

    # op 0: 100 + 10 / image; op 1 (optimizer step): 300, flat; op 2:
    # 40 + 12 / image (overtakes op 0 beyond 30 images)
    lines = MemoryLines([110, 300, 52], [120, 300, 64], 1, 2)
    assert lines.peak(0) == 300 and lines.peak(50) == 640
    assert lines.max_batch(299) == 0  # the flat op alone does not fit
    previous = 0
    for budget in range(300, 2000, 7):
        batch = lines.max_batch(budget)
        assert lines.peak(batch) <= budget < lines.peak(batch + 1)
        assert batch >= previous
        previous = batch
    with pytest.raises(ValueError, match='different operators'):
        MemoryLines([1, 2], [1], 1, 2)


def test_accumulation_plan_reaches_the_config_batch_exactly():
    from mim_plugins.utils.efficiency import accumulation_plan
    assert accumulation_plan(512, 600) == (512, 1)
    assert accumulation_plan(512, 512) == (512, 1)
    assert accumulation_plan(512, 100) == (64, 8)
    assert accumulation_plan(96, 40) == (32, 3)
    assert accumulation_plan(64, 3) == (2, 32)
    assert accumulation_plan(7, 3) == (1, 7)  # a prime batch: 1 x 7
    for target in range(1, 70):
        for max_batch in range(1, 70):
            batch, counts = accumulation_plan(target, max_batch)
            assert batch * counts == target and batch <= max_batch
    with pytest.raises(ValueError):
        accumulation_plan(512, 0)


def test_plan_memory_from_lines():
    from mim_plugins.utils.efficiency import (GIB, MemoryBudgetError,
                                              MemoryLines, plan_memory)

    mib = 1024**2
    # 100 MiB resident; a plain step peaks at 100 MiB + 1 MiB / image, an
    # accumulation cycle (gradients kept) at 150 MiB + 1 MiB / image
    lines = dict(
        name='toy',
        precision='fp32',
        config_batch=256,
        accumulative_counts=1,
        resident_bytes=100 * mib,
        grad_bytes=50 * mib,
        step=MemoryLines([101 * mib], [102 * mib], 1, 2),
        accumulate=MemoryLines([151 * mib], [152 * mib], 1, 2))
    plan = plan_memory(lines, 1.0, margin_gib=0, margin_frac=0)
    # 1024 MiB: 924 images in one step, the config's 256 fit
    assert plan['max_batch'] == 924
    assert (plan['batch'], plan['accumulative_counts']) == (256, 1)
    assert plan['predicted_peak_gib'] == (100 + 256) / 1024
    # margins: 1024 * 0.75 - 128 = 640 MiB usable
    plan = plan_memory(lines, 1.0, margin_gib=0.125, margin_frac=0.25)
    assert plan['usable_gib'] * GIB == 640 * mib
    assert plan['max_batch'] == 540
    # DDP keeps one more gradient copy
    plan = plan_memory(lines, 0.25, margin_gib=0, margin_frac=0, ddp=True)
    assert plan['max_batch'] == 256 - 50 - 100
    # 256 MiB: 156 images per plain step; with gradients kept 105, so
    # 64 x 4 reaches 256
    plan = plan_memory(lines, 0.25, margin_gib=0, margin_frac=0)
    assert plan['max_batch'] == 156
    assert (plan['batch'], plan['accumulative_counts']) == (64, 4)
    assert plan['effective_batch'] == 256
    # below the resident state + one image: a clear message naming the
    # minimum (151 MiB = 0.1475 GiB, rounded up)
    with pytest.raises(MemoryBudgetError) as err:
        plan_memory(lines, 0.09, margin_gib=0, margin_frac=0)
    msg = str(err.value)
    assert 'toy' in msg and 'optimizer state take 0.0977 GiB' in msg
    assert 'needs at least 0.15 GiB' in msg
    with pytest.raises(MemoryBudgetError, match='at least 1.28 GiB'):
        plan_memory(lines, 1.0, margin_gib=1.0, margin_frac=0.1)


def test_cuda_autocast_policy_on_cpu():
    from mim_plugins.utils.efficiency import CudaAutocastPolicy
    norm, linear = torch.nn.LayerNorm(8), torch.nn.Linear(8, 8)
    x = torch.randn(2, 8)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        # CPU autocast alone keeps LayerNorm/softmax in bf16 ...
        assert norm(linear(x)).dtype == torch.bfloat16
        with CudaAutocastPolicy():
            y = linear(x)
            # ... CUDA runs them (and losses, reductions) in float32
            assert y.dtype == torch.bfloat16
            assert norm(y).dtype == torch.float32
            assert y.softmax(-1).dtype == torch.float32
            assert (y**2).dtype == torch.float32
            assert torch.nn.functional.mse_loss(y, y).dtype == torch.float32
            assert linear(norm(y)).dtype == torch.bfloat16
    with CudaAutocastPolicy():  # no autocast: nothing changes
        assert x.bfloat16().softmax(-1).dtype == torch.bfloat16


def test_accumulating_restores_the_wrapper():
    from mmengine.optim import OptimWrapper

    from mim_plugins.utils.efficiency import accumulating
    model = torch.nn.Linear(2, 1)
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    x = torch.ones(4, 2)
    with accumulating(wrapper, 3):
        for _ in range(2):
            wrapper.update_params(model(x).sum())
            # gradients stay until the third iteration steps
            assert model.weight.grad is not None
        wrapper.update_params(model(x).sum())
        assert model.weight.grad is None
    assert wrapper._accumulative_counts == 1 and wrapper._inner_count == 0
