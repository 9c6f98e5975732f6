# Copyright (c) OpenMMLab. All rights reserved.
"""``tools/analysis_tools/gpu_memory_check.py`` without a GPU: it refuses
cleanly, and its report is what the planner's ``--calibration`` reads."""
import importlib.util
import subprocess
import sys

import pytest
from helpers import REPO_ROOT, subprocess_env

TOOL = f'{REPO_ROOT}/tools/analysis_tools/gpu_memory_check.py'
MAE_B = f'{REPO_ROOT}/configs/mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py'
MIXMIM_B = f'{REPO_ROOT}/configs/mixmim/mixmim_vit-base-p16_16xb128-coslr-300e_in1k.py'


def load_tool():
    spec = importlib.util.spec_from_file_location('gpu_memory_check', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_refuses_without_cuda(tmp_path):
    env = dict(subprocess_env(), CUDA_VISIBLE_DEVICES='')
    out = tmp_path / 'check.json'
    proc = subprocess.run(
        [sys.executable, TOOL, MAE_B, '--amp', '--out',
         str(out)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300)
    assert proc.returncode == 1
    assert 'gpu_memory_check.py measures training memory on a CUDA ' \
        'device' in proc.stderr
    assert 'torch.cuda.is_available() is False' in proc.stderr
    assert 'Traceback' not in proc.stderr and not out.exists()


def test_arguments_are_checked():
    tool = load_tool()
    args = tool.parse_args([MAE_B, '--batch', '64', '--amp'])
    assert (args.batch, args.amp, args.iters) == (64, True, 3)
    with pytest.raises(SystemExit):
        tool.parse_args([MAE_B, '--batch', '0'])


def test_configs_train_as_asked():
    """--amp trains with AmpOptimWrapper (as tools/train.py --amp), fp32
    without it, whatever the config's own wrapper."""
    tool = load_tool()
    mae_fp32 = tool.cuda_config(MAE_B, amp=False).optim_wrapper
    assert mae_fp32.type == 'OptimWrapper' and 'loss_scale' not in mae_fp32
    assert tool.cuda_config(MAE_B, amp=True).optim_wrapper.type == \
        'AmpOptimWrapper'
    mixmim_amp = tool.cuda_config(MIXMIM_B, amp=True).optim_wrapper
    assert mixmim_amp.type == 'AmpOptimWrapper'
    assert mixmim_amp.loss_scale == 'dynamic'


def test_report_is_a_calibration(tmp_path):
    from mim_plugins.benchmarks import (GIB, calibration_run, load_calibration,
                                        plan_memory)
    tool = load_tool()
    runs = [
        # fits: 9 GiB reserved for 8 GiB predicted; twice the batch: OOM
        calibration_run('mae', 'amp', 'sdpa', 256, 8 * GIB, 8.4 * GIB,
                        9 * GIB),
        calibration_run('mae', 'amp', 'sdpa', 512, 16 * GIB),
    ]
    report = tool.make_report(runs, 'GPU-X', 80.0, 0.5 * GIB, 3)
    out = tmp_path / 'sub' / 'check.json'
    tool.write_report(report, str(out))
    cal = load_calibration(str(out), [('mae', 'amp')])[('mae', 'amp')]
    assert cal['ratio'] == pytest.approx(9 / 8)
    assert cal['context_gib'] == 0.5 and cal['device'] == 'GPU-X'
    assert runs[0]['allocated_ratio'] == pytest.approx(8.4 / 8)
    assert runs[1]['oom'] and 'max_reserved_gib' not in runs[1]

    from mim_plugins.benchmarks import MemoryLines
    lines = dict(
        name='mae',
        precision='amp',
        config_batch=512,
        accumulative_counts=1,
        resident_bytes=GIB,
        grad_bytes=0.25 * GIB,
        step=MemoryLines([GIB + 2**20], [GIB + 2**21], 1, 2),
        accumulate=MemoryLines([GIB + 2**20], [GIB + 2**21], 1, 2))
    # (12.5 - 0.5) / 1.125 GiB usable, 1 GiB resident, 1 MiB per image
    plan = plan_memory(lines, 12.5, calibration=cal)
    assert plan['max_batch'] == int((12 / 1.125 - 1) * 1024)
