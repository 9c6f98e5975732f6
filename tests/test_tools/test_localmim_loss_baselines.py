# Copyright (c) OpenMMLab. All rights reserved.
"""tools/analysis_tools/localmim_loss_baselines.py: the losses of image-blind
predictors under LocalMIMHead's masked loss, beside a run's logged ones."""
import importlib.util
import json
import math
import os.path as osp
import subprocess
import sys

import pytest
import torch
from helpers import (FMNIST_CONFIGS, REPO_ROOT, subprocess_env,
                      tiny_fmnist_config)

from mim_plugins.models.heads import LocalMIMHead

TOOL = osp.join(REPO_ROOT, 'tools/analysis_tools/localmim_loss_baselines.py')
spec = importlib.util.spec_from_file_location('localmim_loss_baselines', TOOL)
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)


def test_baseline_losses_by_hand():
    head = LocalMIMHead(
        patch_size=4,
        scales=[1],
        target='pixel',
        in_channels=1,
        norm_pix=False,
        loss_weights=[2.])
    # 2 images x 2 cells x 1 dim: cell means 2 and 4, dataset mean 3
    y = torch.tensor([[[1.], [3.]], [[3.], [5.]]])
    full = torch.ones(2, 2)
    (row, ) = tool.baseline_losses(head, [y], [full])
    # weight 2 x mean squared error over the four cells
    assert row == pytest.approx(
        dict(
            zero_cells=0.,
            zero=2 * (1 + 9 + 9 + 25) / 4,
            dataset_mean=2 * (4 + 0 + 0 + 4) / 4,
            cell_mean=2 * (1 + 1 + 1 + 1) / 4))
    # only the masked cells count: (image 0, cell 0) and (image 1, cell 1)
    diag = torch.tensor([[1., 0.], [0., 1.]])
    (row, ) = tool.baseline_losses(head, [y], [diag])
    assert row == pytest.approx(
        dict(
            zero_cells=0.,
            zero=2 * (1 + 25) / 2,
            dataset_mean=2 * (4 + 4) / 2,
            cell_mean=2.))
    # one all-zero cell of four
    y[1, 1] = 0.
    (row, ) = tool.baseline_losses(head, [y], [full])
    assert row['zero_cells'] == 0.25


def test_logged_losses_skip_other_records(tmp_path):
    path = tmp_path / 'scalars.json'
    lines = [
        dict(iter=10, loss=3., loss_scale0=2., loss_scale1=1.),
        dict(iter=20, loss=2., loss_scale0=1.5, loss_scale1=.5),
        dict(step=1, knn_top1=60.),  # an evaluation record
    ]
    path.write_text('\n'.join(json.dumps(r) for r in lines) + '\n')
    assert tool.logged_losses(str(path), 2) == dict(
        first=[2., 1.], last=[1.5, .5], first_iter=10, last_iter=20)
    with pytest.raises(ValueError, match='loss_scale2'):
        tool.logged_losses(str(path), 3)


def run_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, TOOL, *args],
                          cwd=REPO_ROOT,
                          env=subprocess_env(),
                          capture_output=True,
                          text=True,
                          timeout=300)


def test_tool_end_to_end(tmp_path, fmnist_root):
    config, _ = tiny_fmnist_config('localmim', str(tmp_path))
    scalars = tmp_path / 'scalars.json'
    scalars.write_text(
        json.dumps(dict(iter=1, **{f'loss_scale{k}': .1
                                   for k in range(4)})) + '\n' +
        json.dumps(dict(iter=9, **{f'loss_scale{k}': .05
                                   for k in range(4)})) + '\n')
    out = tmp_path / 'out'
    res = run_tool(config, '--samples', '64', '--batch-size', '32',
                   '--data-root', fmnist_root, '--scalars', str(scalars),
                   '--out', str(out))
    assert res.returncode == 0, res.stderr[-2000:]
    result = json.loads((out / 'loss_baselines.json').read_text())
    assert result['scales'] == [4, 2, 1, 0.5]
    assert result['logged']['last'] == [.05] * 4
    for row in result['baselines']:
        assert set(row) == {'zero_cells', 'zero', 'dataset_mean', 'cell_mean'}
        assert 0 <= row['zero_cells'] < 1
        assert all(
            math.isfinite(row[k]) and row[k] > 0 for k in tool.PREDICTORS)
        # HOG cells are non-negative: knowing their mean beats zeros
        assert row['cell_mean'] < row['zero']
    table = (out / 'loss_baselines.md').read_text()
    assert '| 0.5 | 8 | 0.' in table and 'logged, iter 9' in table
    # the same seed draws the same images, crops and masks
    again = run_tool(config, '--samples', '64', '--batch-size', '64',
                     '--data-root', fmnist_root, '--out', str(out))
    assert again.returncode == 0, again.stderr[-2000:]
    rerun = json.loads((out / 'loss_baselines.json').read_text())
    assert rerun['logged'] is None
    for a, b in zip(rerun['baselines'], result['baselines']):
        assert a == pytest.approx(b)


def test_bad_input(tmp_path, fmnist_root):
    config, _ = tiny_fmnist_config('localmim', str(tmp_path))
    res = run_tool(config, '--samples', '0', '--data-root', fmnist_root)
    assert res.returncode != 0 and '--samples must be in [1, ' in res.stderr
    res = run_tool(FMNIST_CONFIGS['mae'], '--samples', '8', '--data-root',
                   fmnist_root)
    assert res.returncode != 0
    assert 'model.head must be a LocalMIMHead' in res.stderr
