# Copyright (c) OpenMMLab. All rights reserved.
"""The analysis tools behind docs/experiments: BIM's saved activations,
PR-MIM's train-step FLOPs and the two HOG gradient forms."""
import importlib.util
import os.path as osp
import re

import numpy as np
from helpers import REPO_ROOT, run_tool, write_idx

TINY = {
    algo: osp.join(REPO_ROOT, 'configs', algo,
                   f'{algo}_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py')
    for algo in ('bim', 'prmim', 'mae', 'localmim')
}


def load_tool(name):
    path = osp.join(REPO_ROOT, 'tools/analysis_tools', f'{name}.py')
    spec = importlib.util.spec_from_file_location(name, path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def table_rows(table):
    return [[c.strip() for c in line.strip('|').split('|')]
            for line in table.splitlines()
            if line.startswith('| ') and '---' not in line][1:]


def test_bim_saved_activations_fall_with_blocks():
    tool = load_tool('bim_saved_activations')
    rows = table_rows(
        tool.activation_table(
            TINY['bim'],
            TINY['mae'],
            batch_size=2,
            splits=([12], [6, 12], [3, 6, 9, 12])))
    names = [r[0] for r in rows]
    assert names == [
        'MAE', 'BIM K=1 [12]', 'BIM K=2 [6, 12]', 'BIM K=4 [3, 6, 9, 12]'
    ]
    mib = [float(r[2]) for r in rows]
    # K=1 keeps MAE's graph (same decoder depth); more blocks, less memory
    assert mib[1] == mib[0]
    assert mib[1] > mib[2] > mib[3]
    # the ratio column is of the unrounded bytes
    assert abs(float(rows[3][3]) - mib[3] / mib[0]) < 0.02


def test_prmim_flops_thrown_path_cheap_and_saving():
    tool = load_tool('prmim_flops')
    table = tool.flop_table(
        TINY['prmim'], TINY['mae'], batch_size=2, throw_ratios=(0.25, 0.5))
    rows = table_rows(table)
    assert [(r[0], r[1]) for r in rows] == [('0.25', 'progressive'),
                                           ('0.25', 'none'),
                                           ('0.5', 'progressive'),
                                           ('0.5', 'none')]
    ratios = [float(r[3]) for r in rows]
    # throwing more saves more; the thrown path costs a little, below 1 %
    assert 1 > ratios[0] >= ratios[1] > ratios[2] >= ratios[3]
    shares = [float(r[4].rstrip('%')) for r in rows if r[1] == 'progressive']
    assert all(0 < s < 1 for s in shares)


def test_hog_gradient_forms_on_a_flat_background(tmp_path):
    # black background, one bright bar: the flat cells are where the two
    # forms differ (round-off of the convolution vs exact zeros)
    n = 8
    images = np.zeros((n, 28, 28), np.uint8)
    images[:, 10:14, 4:24] = 200
    for prefix in ('train', 't10k'):
        write_idx(str(tmp_path), prefix, images, np.arange(n) % 10)
    proc = run_tool([
        'tools/analysis_tools/hog_gradient_forms.py', TINY['localmim'],
        '--pad', '2', '--samples', str(n), '--cells', '1', '4',
        '--cfg-options', f'data_root={tmp_path}'
    ])
    found = re.search(r'1-px cells: ([\d.]+)% differ, ([\d.]+)% flat',
                      proc.stdout)
    assert found, proc.stdout
    differ, flat = map(float, found.groups())
    # most of the 32x32 image is flat background, and there they differ
    assert flat > 50 and differ > 50
    assert '4-px cells:' in proc.stdout
