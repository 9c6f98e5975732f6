# Copyright (c) OpenMMLab. All rights reserved.
import pytest
import torch

from mim_plugins.benchmarks import (LiveTensorMemory, extrapolate_memory,
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
    from mim_plugins.benchmarks import flop_counter_mode
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
    from mim_plugins.benchmarks import extrapolate_timeline

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
    from mim_plugins.benchmarks import MemoryLines

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
    from mim_plugins.benchmarks import accumulation_plan
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
    from mim_plugins.benchmarks import (GIB, MemoryBudgetError, MemoryLines,
                                        plan_memory)

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
    from mim_plugins.benchmarks import CudaAutocastPolicy
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

    from mim_plugins.benchmarks import accumulating
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


def test_cuda_foreach_temporaries_of_adam():
    from mim_plugins.benchmarks import cuda_foreach_temporary_bytes
    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Linear(4, 2))
    big = (8 * 4 + 4) * 4  # first layer, fp32
    small = (4 * 2 + 2) * 4
    model(torch.ones(1, 8)).sum().backward()

    def temporaries(optim_cls, groups=None, **kwargs):
        groups = groups or [{'params': list(model.parameters())}]
        return cuda_foreach_temporary_bytes(optim_cls(groups, **kwargs))

    # AdamW: sqrt(exp_avg_sq) of every parameter of the group at once
    assert temporaries(torch.optim.AdamW) == big + small
    # one group at a time: the largest group counts
    per_layer = [{'params': list(m.parameters())} for m in model]
    assert temporaries(torch.optim.AdamW, per_layer) == big
    # Adam's L2 weight decay adds a copy of the gradients, maximize another
    assert temporaries(torch.optim.Adam, weight_decay=0.1) == 2 * (big + small)
    assert temporaries(torch.optim.AdamW, maximize=True) == 2 * (big + small)
    # the single-tensor and fused steps, and other optimizers: none
    assert temporaries(torch.optim.AdamW, foreach=False) == 0
    assert temporaries(torch.optim.AdamW, fused=True) == 0
    assert temporaries(torch.optim.SGD, lr=0.1) == 0
    # parameters without a gradient are not stepped
    model[1].weight.grad = model[1].bias.grad = None
    assert temporaries(torch.optim.AdamW) == big


def test_eager_attention_extra_by_hand():
    from mim_plugins.benchmarks import (eager_attention_bytes,
                                        eager_attention_extra)
    assert eager_attention_bytes(10, 'fp32') == (80, 40, 120)
    assert eager_attention_bytes(10, 'amp') == (100, 60, 120)
    # layer a (100 scores, logsumexp 8 bytes) at op 1, layer b (30 scores,
    # 4 bytes) at op 2; backward of b at op 5, of a at op 7; a call without
    # gradient (10 scores) at op 8
    events = [(1, 'sdpa', 100, 8), (2, 'sdpa', 30, 4),
              (5, 'sdpa_backward', 30, 0), (7, 'sdpa_backward', 100, 0),
              (8, 'sdpa', 10, 2)]
    extra = eager_attention_extra(10, events, 'fp32')
    a_kept, b_kept = 4 * 100 - 8, 4 * 30 - 4
    assert extra == [
        0,
        8 * 100 - 8,  # scores and probabilities of a, no logsumexp
        a_kept + 8 * 30 - 4,
        a_kept + b_kept,
        a_kept + b_kept,
        a_kept + 12 * 30 - 4,  # softmax backward of b
        a_kept,
        12 * 100 - 8,
        8 * 10,  # forward only: nothing kept
        0
    ]
    # an unmatched backward is ignored
    assert eager_attention_extra(3, [(1, 'sdpa_backward', 5, 0)],
                                 'amp') == [0, 0, 0]


def write_calibration(path, runs, context_gib=0.5, fmt=None):
    import json

    from mim_plugins.benchmarks import CALIBRATION_FORMAT
    path.write_text(
        json.dumps(
            dict(
                format=fmt or CALIBRATION_FORMAT,
                device='GPU-X',
                context_gib=context_gib,
                runs=runs)))
    return str(path)


def test_calibration_replaces_the_margin(tmp_path):
    from mim_plugins.benchmarks import (GIB, MemoryLines, calibration_run,
                                        load_calibration, min_budget_gib,
                                        plan_memory, usable_bytes)
    # arithmetic of one run: measured / predicted
    run = calibration_run('toy', 'amp', 'sdpa', 64, 2 * GIB, 2.2 * GIB,
                          2.5 * GIB)
    assert run['allocated_ratio'] == pytest.approx(1.1)
    assert run['reserved_ratio'] == pytest.approx(1.25)
    assert run['predicted_peak_gib'] == 2 and not run['oom']
    oom = calibration_run('toy', 'amp', 'sdpa', 128, 4 * GIB)
    assert oom['oom'] and 'reserved_ratio' not in oom
    other = calibration_run('toy', 'amp', 'sdpa', 32, GIB, GIB, 1.2 * GIB)
    path = write_calibration(tmp_path / 'cal.json', [run, oom, other])
    cal = load_calibration(path, [('toy', 'amp')])[('toy', 'amp')]
    # the largest ratio of the runs that fitted, and the CUDA context
    assert cal == dict(
        ratio=pytest.approx(1.25), context_gib=0.5, device='GPU-X')
    assert usable_bytes(10.5, 1.0, 0.1, cal) == 8 * GIB
    assert usable_bytes(10.5, 1.0, 0.1) == (10.5 * 0.9 - 1) * GIB
    assert min_budget_gib(8 * GIB, 1.0, 0.1, cal) == 10.5

    mib = 1024**2
    lines = dict(
        name='toy',
        precision='amp',
        config_batch=4096,
        accumulative_counts=1,
        resident_bytes=100 * mib,
        grad_bytes=50 * mib,
        step=MemoryLines([101 * mib], [102 * mib], 1, 2),
        accumulate=MemoryLines([151 * mib], [152 * mib], 1, 2))
    # 1.5 GiB: (1.5 - 0.5) / 1.25 = 819.2 MiB usable, 719 images; the
    # default margin leaves 1.5 * 0.9 - 1 = 0.35 GiB, 258 images
    assert plan_memory(lines, 1.5, calibration=cal)['max_batch'] == 719
    assert plan_memory(lines, 1.5)['max_batch'] == 258


def test_calibration_file_is_validated(tmp_path):
    from mim_plugins.benchmarks import (CalibrationError, calibration_run,
                                        load_calibration)
    run = calibration_run('mae', 'fp32', 'sdpa', 8, 100.0, 110.0, 120.0)
    bad = tmp_path / 'bad.json'
    bad.write_text('{"format": ')
    with pytest.raises(CalibrationError, match='bad.json: cannot read it'):
        load_calibration(str(bad), [('mae', 'fp32')])
    with pytest.raises(CalibrationError, match="format 'other'"):
        load_calibration(
            write_calibration(tmp_path / 'f.json', [run], fmt='other'),
            [('mae', 'fp32')])
    with pytest.raises(CalibrationError, match='context_gib must be'):
        load_calibration(
            write_calibration(tmp_path / 'c.json', [run], context_gib=-1),
            [('mae', 'fp32')])
    broken = dict(run, reserved_ratio=0)
    with pytest.raises(CalibrationError, match='run 0 .* reserved_ratio 0'):
        load_calibration(
            write_calibration(tmp_path / 'r.json', [broken]),
            [('mae', 'fp32')])
    path = write_calibration(tmp_path / 'ok.json', [run])
    # a config or precision the file has no run of: named, with the runs
    with pytest.raises(CalibrationError) as err:
        load_calibration(path, [('mae', 'fp32'), ('bim', 'fp32')])
    assert 'no GPU run of bim (fp32)' in str(err.value)
    assert 'runs there: mae (fp32)' in str(err.value)
    with pytest.raises(CalibrationError, match=r'no GPU run of mae \(amp\)'):
        load_calibration(path, [('mae', 'amp')])
