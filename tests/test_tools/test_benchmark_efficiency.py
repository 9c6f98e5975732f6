# Copyright (c) OpenMMLab. All rights reserved.
import json
import os.path as osp
import subprocess
import sys

import pytest
from helpers import REPO_ROOT, run_tool, subprocess_env

TINY_MAE = """
_base_ = ['{root}/configs/_base_/default_runtime.py']
data_preprocessor = dict(
    type='SelfSupDataPreprocessor', mean=[127.5], std=[50.0], to_rgb=False)
model = dict(
    type='MAE',
    backbone=dict(type='MAEViT', img_size=16, patch_size=4,
                  patch_cfg=dict(in_channels=1), mask_ratio={ratio},
                  arch=dict(embed_dims=32, num_layers=2, num_heads=2,
                            feedforward_channels=64)),
    neck=dict(type='MAEPretrainDecoder', num_patches=16, patch_size=4,
              in_chans=1, embed_dim=32, decoder_embed_dim=16,
              decoder_depth=1, decoder_num_heads=2),
    head=dict(type='MAEPretrainHead', norm_pix=True, patch_size=4,
              in_channels=1,
              loss=dict(type='PixelReconstructionLoss', criterion='L2')))
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic',
                     optimizer=dict(type='AdamW', lr=1e-3))
train_dataloader = dict(batch_size=64)
"""

RECORD_KEYS = {
    'config', 'name', 'algorithm', 'image_shape', 'batch_size', 'mem_batch',
    'params_total', 'params_encoder', 'flops_per_image', 'step_time',
    'images_per_s', 'resident_bytes', 'peak_bytes_measured',
    'peak_bytes_at_mem_batch', 'peak_bytes_at_mem_batch_source', 'ratios'
}


def test_efficiency_report(tmp_path):
    base = tmp_path / 'mae_tiny.py'
    base.write_text(TINY_MAE.format(root=REPO_ROOT, ratio=0.75))
    low = tmp_path / 'mae_tiny_mask50.py'
    low.write_text(TINY_MAE.format(root=REPO_ROOT, ratio=0.5))
    out = tmp_path / 'out'
    proc = subprocess.run([
        sys.executable, 'tools/analysis_tools/benchmark_efficiency.py',
        str(base),
        str(low), '--baseline',
        str(base), '--batch-size', '2', '--iters', '1', '--out',
        str(out)
    ],
                          cwd=REPO_ROOT,
                          env=subprocess_env(),
                          capture_output=True,
                          text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / 'efficiency.json') as f:
        report = json.load(f)
    assert set(report['meta']) >= {'device', 'torch', 'batch_size', 'baseline'}
    baseline, same, half_masked = report['records']
    for rec in report['records']:
        assert set(rec) == RECORD_KEYS
        assert rec['image_shape'] == [1, 16, 16]
        assert rec['mem_batch'] == 64
        assert rec['peak_bytes_at_mem_batch_source'] == \
            'extrapolated per operator'
    # a config against itself: identical FLOPs and memory
    assert same['ratios']['flops'] == 1.0
    assert same['ratios']['memory'] == 1.0
    # mask ratio 0.5 encodes 8 instead of 4 patches: more FLOPs
    assert half_masked['ratios']['flops'] > 1.0
    assert half_masked['params_total'] == baseline['params_total']
    assert osp.isfile(out / 'efficiency.md') and osp.isfile(
        out / 'efficiency.png')
    assert 'FLOPs ratio' in proc.stdout


def test_math_attention_keeps_attention_maps(tmp_path):
    """``--attention math`` stores every attention map: more memory; fewer
    FLOPs (the fused backward recomputes the attention scores)."""
    import importlib.util

    import mim_plugins  # noqa: F401
    from mim_plugins.benchmarks import measure_config
    spec = importlib.util.spec_from_file_location(
        'benchmark_efficiency_tool',
        f'{REPO_ROOT}/tools/analysis_tools/benchmark_efficiency.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    cfg = tmp_path / 'mae_tiny.py'
    cfg.write_text(TINY_MAE.format(root=REPO_ROOT, ratio=0.25))
    records = {}
    for name in ('default', 'math'):
        with tool.attention_backend(name):
            records[name] = measure_config(
                str(cfg), batch_size=2, mem_batch=4, iters=1)
    default, math = records['default'], records['math']
    assert 0.9 * default['flops_per_image'] < math['flops_per_image'] < \
        default['flops_per_image']
    # the unfused kernel keeps 2 heads x 13 x 13 probabilities per encoder
    # layer (2 layers) and 2 x 17 x 17 in the decoder layer, per image (4);
    # at the peak (in backward) part of them is already freed
    maps = 4 * (2 * 13 * 13 * 2 + 2 * 17 * 17) * 4
    extra = math['peak_bytes_at_mem_batch'] - default['peak_bytes_at_mem_batch']
    assert extra > 0.5 * maps


def tiny_config(tmp_path, name: str, ratio: float = 0.75, **bim) -> str:
    """The tiny MAE config; ``blocks=[...]`` makes it a BIM one."""
    text = TINY_MAE.format(root=REPO_ROOT, ratio=ratio)
    if bim:
        # BIM: the same 4-layer encoder cut into blocks, one decoder each
        text = text.replace('num_layers=2', 'num_layers=4') + (
            "model.update(type='BIM')\n"
            "model['backbone'].update(type='BIMViT', block_boundaries="
            f"{bim['blocks']})\n"
            "optim_wrapper['constructor'] = 'BIMOptimWrapperConstructor'\n")
    path = tmp_path / f'{name}.py'
    path.write_text(text)
    return str(path)


def test_memory_plan_report(tmp_path):
    cfg = tiny_config(tmp_path, 'mae_tiny')
    out = tmp_path / 'out'
    budgets = ['0.0002', '0.0005', '0.001', '0.002', '0.01']
    proc = run_tool([
        'tools/analysis_tools/benchmark_efficiency.py', cfg, '--baseline', cfg,
        '--fit-memory', *budgets, '--margin-gib', '0', '--margin-frac', '0',
        '--fit-only', '--out',
        str(out)
    ])
    with open(out / 'efficiency.json') as f:
        plan = json.load(f)['memory_plan']
    assert plan['budgets_gib'] == [float(b) for b in budgets]
    # the baseline listed twice is planned once, in fp32 and AMP
    assert [row['precision'] for row in plan['rows']] == ['fp32', 'amp']
    for row in plan['rows']:
        assert row['config_batch'] == 64
        too_small, *plans = row['plans']
        # 0.2 MiB cannot hold the ~0.25 MiB of weights and AdamW state
        assert 'needs at least' in too_small['error']
        assert row['resident_gib'] > 0.0002
        batches = [p['max_batch'] for p in plans]
        counts = [p['accumulative_counts'] for p in plans]
        assert batches == sorted(batches) and batches[0] < 64 <= batches[-1]
        assert counts == sorted(counts, reverse=True) and counts[-1] == 1
        for p in plans:
            assert p['batch'] * p['accumulative_counts'] == 64
            assert p['predicted_peak_gib'] <= p['budget_gib']
            assert p['cfg_options'] == (
                f"train_dataloader.batch_size={p['batch']} "
                f"optim_wrapper.accumulative_counts="
                f"{p['accumulative_counts']}")
    fp32, amp = plan['rows']
    # bf16 activations: AMP fits more images than fp32 at every budget
    for p32, p16 in zip(fp32['plans'][1:], amp['plans'][1:]):
        assert p16['max_batch'] > p32['max_batch']
    assert 'does not fit' in proc.stdout and '0.01 GiB' in proc.stdout
    assert 'WARNING: 0.0002 GiB is too small for mae_tiny' in proc.stderr
    assert not osp.exists(out / 'efficiency.png')  # --fit-only


@pytest.mark.parametrize('precision', ['fp32', 'amp'])
def test_planned_batch_fits_and_a_larger_one_does_not(tmp_path, precision):
    from mim_plugins.benchmarks import (GIB, load_config, measure_memory_lines,
                                        measure_timelines, plan_memory)
    path = tiny_config(tmp_path, 'mae_tiny')
    budget = 0.002  # GiB: fits tens of tiny images, not the config's 64
    plan = plan_memory(measure_memory_lines(path, precision), budget, 0, 0)
    assert 4 < plan['max_batch'] < 64 and plan['accumulative_counts'] > 1
    cfg = load_config(path)

    def measured_peak(batch, accumulate=False):
        run = measure_timelines(cfg, batch, precision)
        return max(run['accumulate' if accumulate else 'step']) / GIB

    assert measured_peak(plan['max_batch']) <= budget
    assert measured_peak(2 * plan['max_batch']) > budget
    # the batch of the accumulation plan fits with gradients kept
    assert measured_peak(plan['batch'], accumulate=True) <= budget
    assert measured_peak(2 * plan['batch'], accumulate=True) > budget


def test_bim_is_planned_by_its_largest_block(tmp_path):
    """BIM's blocks step one after another: its activation memory is one
    block's, not the sum of its blocks'."""
    from mim_plugins.benchmarks import measure_memory_lines

    def bytes_per_image(path):
        lines = measure_memory_lines(path)['step']
        return (lines.peak(1000) - lines.peak(500)) / 500

    four = bytes_per_image(
        tiny_config(tmp_path, 'bim4', ratio=0.25, blocks=[1, 2, 3, 4]))
    one = bytes_per_image(
        tiny_config(tmp_path, 'bim1', ratio=0.25, blocks=[4]))
    # K=1 holds 4 encoder layers + 1 decoder per image; K=4 one layer + one
    # decoder (the sum of the 4 blocks would exceed K=1)
    assert four < 0.6 * one


def trace_tiny_mae(path, batch, precision, unfused=False):
    """One traced training step of the tiny MAE; ``unfused=True`` runs
    mmpretrain's own eager attention (``scaled_dot_product_attention_pyimpl``)
    in every attention layer instead of the fused kernel."""
    import torch
    from mmengine.registry import DefaultScope
    from mmpretrain.models.utils.attention import (
        MultiheadAttention, scaled_dot_product_attention_pyimpl)

    from mim_plugins.benchmarks import (build_model_and_optim, image_shape,
                                        load_config, make_batch, memory_trace,
                                        use_cpu_autocast)
    cfg = load_config(path)
    torch.manual_seed(0)
    model, optim_wrapper = build_model_and_optim(cfg)
    if precision == 'amp':
        use_cpu_autocast(optim_wrapper)
    if unfused:
        for module in model.modules():
            if isinstance(module, MultiheadAttention):
                module.scaled_dot_product_attention = \
                    scaled_dot_product_attention_pyimpl
    data = make_batch(batch, image_shape(cfg))

    def step():
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            model.train_step(data, optim_wrapper)

    step()
    return memory_trace(step, model, optim_wrapper)


@pytest.mark.parametrize('precision', ['fp32', 'amp'])
def test_eager_attention_term_by_hand(tmp_path, precision):
    """The tiny MAE (mask ratio 0.75): 2 encoder layers on 4 + 1 tokens and
    1 decoder layer on 16 + 1 tokens, 2 heads each."""
    from mim_plugins.benchmarks import measure_memory_lines, planned_timeline
    path = tiny_config(tmp_path, 'mae_tiny')
    batch, heads = 8, 2
    enc, dec = batch * heads * 5 * 5, batch * heads * 17 * 17  # scores
    # what the fused kernel keeps instead: a float32 logsumexp per query
    enc_lse, dec_lse = batch * heads * 5 * 4, batch * heads * 17 * 4
    # probabilities kept: float32; under AMP also their fp16 copy
    size = 6 if precision == 'amp' else 4
    # the softmax backward holds the probabilities, their gradient and the
    # scores' gradient, float32 each
    softmax_backward = 3 * 4

    trace = trace_tiny_mae(path, batch, precision)
    assert [(kind, elements) for _, kind, elements, _ in trace.attention] \
        == [('sdpa', enc), ('sdpa', enc), ('sdpa', dec),
            ('sdpa_backward', dec), ('sdpa_backward', enc),
            ('sdpa_backward', enc)]
    assert [e[3] for e in trace.attention[:3]] == [enc_lse, enc_lse, dec_lse]
    sdpa = planned_timeline(trace, 'sdpa', precision)
    eager = planned_timeline(trace, 'eager', precision)
    extra = [e - s for e, s in zip(eager, sdpa)]
    dec_backward = trace.attention[3][0]
    kept = 2 * (size * enc - enc_lse) + size * dec - dec_lse
    assert extra[dec_backward - 1] == kept  # between forward and backward
    assert extra[dec_backward] == \
        2 * (size * enc - enc_lse) + softmax_backward * dec - dec_lse
    assert extra[-1] == 0  # everything freed after the step

    # the model is exact: mmpretrain's own unfused attention, measured
    unfused = trace_tiny_mae(path, batch, precision, unfused=True)
    assert max(planned_timeline(unfused, 'sdpa', precision)) == max(eager)

    # the planner's prediction at 256 images: eager exceeds sdpa by every
    # layer's kept probabilities (the peak is between forward and backward)
    lines = measure_memory_lines(path, precision)
    assert lines['attention'] == 'sdpa'
    assert lines['attention_calls'] == dict(sdpa=3, eager=0)
    paths = lines['paths']
    diff = paths['eager']['step'].peak(256) - paths['sdpa']['step'].peak(256)
    assert diff == pytest.approx(256 / batch * kept)


def test_foreach_temporaries_raise_the_minimum(tmp_path):
    from mim_plugins.benchmarks import (build_model_and_optim,
                                        cuda_foreach_temporary_bytes,
                                        load_config, planned_timeline)
    path = tiny_config(tmp_path, 'mae_tiny')
    trace = trace_tiny_mae(path, 2, 'fp32')
    _, optim_wrapper = build_model_and_optim(load_config(path))
    params = [
        p for g in optim_wrapper.optimizer.param_groups for p in g['params']
        if p.requires_grad  # MAE's fixed position embeddings get no gradient
    ]
    for p in params:  # the bytes count parameters that have a gradient
        p.grad = p.detach().clone()
    foreach = cuda_foreach_temporary_bytes(optim_wrapper.optimizer)
    # one AdamW group: sqrt(exp_avg_sq) of every trainable parameter
    assert foreach == sum(p.numel() * 4 for p in params) > 0
    (first, end, nbytes), = trace.optimizer_steps
    assert nbytes == foreach and 0 < first < end <= len(trace.timeline)
    planned = planned_timeline(trace, 'sdpa', 'fp32')
    extra = [p - t for p, t in zip(planned, trace.timeline)]
    assert extra == [
        foreach if first <= i < end else 0 for i in range(len(extra))
    ]


def test_plan_attention_ddp_and_calibration(tmp_path):
    import json

    from mim_plugins.benchmarks import CALIBRATION_FORMAT
    cfg = tiny_config(tmp_path, 'mae_tiny')
    budgets = ['0.002', '0.01']

    def plan(*extra, out='out'):
        proc = run_tool([
            'tools/analysis_tools/benchmark_efficiency.py', cfg, '--baseline',
            cfg, '--fit-memory', *budgets, '--margin-gib', '0',
            '--margin-frac', '0', '--fit-only', '--fit-precision', 'amp',
            '--out',
            str(tmp_path / out), *extra
        ])
        with open(tmp_path / out / 'efficiency.json') as f:
            return json.load(f)['memory_plan'], proc

    both, proc = plan('--attention', 'sdpa', 'eager', '--ddp', out='both')
    # the attention the config runs is found and printed
    assert 'mae_tiny (amp): runs sdpa attention' in proc.stderr
    assert '3 fused scaled_dot_product_attention' in proc.stderr
    sdpa, eager = both['rows']
    assert (sdpa['attention'], eager['attention']) == ('sdpa', 'eager')
    assert '| mae_tiny | amp | eager | 64 |' in proc.stdout
    assert 'multi-GPU: DDP gradient buckets counted' in proc.stdout
    # DDP's buckets: one more copy of the gradients
    assert sdpa['ddp_bucket_gib'] == sdpa['grad_gib'] > 0
    for budget, p_sdpa, p_eager in zip(budgets, sdpa['plans'], eager['plans']):
        assert p_sdpa['usable_gib'] == pytest.approx(
            float(budget) - sdpa['ddp_bucket_gib'])
        # eager keeps attention probabilities: fewer images fit
        assert p_eager['max_batch'] < p_sdpa['max_batch']

    # a GPU measurement 2x the prediction halves the usable memory
    cal = tmp_path / 'cal.json'
    cal.write_text(
        json.dumps(
            dict(
                format=CALIBRATION_FORMAT,
                device='GPU-X',
                context_gib=0.0,
                runs=[
                    dict(
                        name='mae_tiny',
                        precision='amp',
                        batch=8,
                        oom=False,
                        reserved_ratio=2.0)
                ])))
    calibrated, proc = plan('--calibration', str(cal), out='cal')
    assert [r['attention'] for r in calibrated['rows']] == ['sdpa']
    for budget, p_cal, p_ddp in zip(budgets, calibrated['rows'][0]['plans'],
                                    sdpa['plans']):
        assert p_cal['usable_gib'] == pytest.approx(float(budget) / 2)
        assert p_cal['max_batch'] < p_ddp['max_batch']
    assert 'margin measured on a GPU' in proc.stdout

    # bad files stop the tool before it measures anything
    def fails(*extra):
        proc = subprocess.run([
            sys.executable, 'tools/analysis_tools/benchmark_efficiency.py',
            cfg, '--baseline', cfg, '--fit-memory', '1', '--fit-only', '--out',
            str(tmp_path / 'bad'), *extra
        ],
                              cwd=REPO_ROOT,
                              env=subprocess_env(),
                              capture_output=True,
                              text=True,
                              timeout=300)
        assert proc.returncode != 0
        return proc.stderr

    # fp32 is planned too, and the file has amp only
    err = fails('--calibration', str(cal))
    assert 'no GPU run of mae_tiny (fp32)' in err
    assert 'runs there: mae_tiny (amp)' in err
