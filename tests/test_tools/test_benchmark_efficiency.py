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
    from mim_plugins.utils.efficiency import measure_config
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
    from mim_plugins.utils.efficiency import (GIB, load_config,
                                              measure_memory_lines,
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
    from mim_plugins.utils.efficiency import measure_memory_lines

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
