# Copyright (c) OpenMMLab. All rights reserved.
"""tools/benchmarks/bim_depths.py: one score per BIM depth; the deepest one
equals scoring the full encoder the way every other method is scored."""
import json
import os.path as osp
import subprocess
import sys

import torch
from conftest import REPO_ROOT, TINY_ARCH, subprocess_env
from mmengine.config import Config
from mmpretrain.registry import MODELS

import mim_plugins  # noqa: F401

TOOL = osp.join(REPO_ROOT, 'tools/benchmarks/bim_depths.py')
CONFIG = osp.join(
    REPO_ROOT, 'configs/bim/bim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py')


def test_scores_every_depth(tmp_path, fmnist_root):
    cfg = Config.fromfile(CONFIG)
    cfg.model.backbone.arch = dict(TINY_ARCH)  # 4 layers, 32 wide
    cfg.model.backbone.block_boundaries = [1, 3, 4]
    cfg.model.neck.update(embed_dim=32, decoder_embed_dim=16, decoder_depth=1)
    cfg.model.neck.decoder_num_heads = 2
    config = str(tmp_path / 'bim_tiny.py')
    cfg.dump(config)

    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    with torch.no_grad():  # block norms distinct from their init
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ckpt = str(tmp_path / 'bim.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)

    out = tmp_path / 'out'
    res = subprocess.run([
        sys.executable, TOOL, config, ckpt, '--compare',
        f'full={config}:{ckpt}', '--data-root', fmnist_root,
        '--eval-train-samples', '200', '--eval-test-samples', '64',
        '--probe-epochs', '5', '--out',
        str(out)
    ],
                         env=subprocess_env(),
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = json.load(open(out / 'bim_depths.json'))['rows']
    assert [(r['model'], r['depth']) for r in rows] == [('bim', 1), ('bim', 3),
                                                        ('bim', 4),
                                                        ('full', 4)]
    for row in rows:
        assert 0 <= row['knn_top1'] <= 100
        assert 0 <= row['linear_top1'] <= 100
    # depth K through forward_prefix == the un-masked full encoder
    assert rows[2]['knn_top1'] == rows[3]['knn_top1']
    assert '| bim | 3 |' in (out / 'bim_depths.md').read_text()
