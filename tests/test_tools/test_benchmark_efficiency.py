# Copyright (c) OpenMMLab. All rights reserved.
import json
import os.path as osp
import subprocess
import sys

from helpers import REPO_ROOT, subprocess_env

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
