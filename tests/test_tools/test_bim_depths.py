# Copyright (c) OpenMMLab. All rights reserved.
"""tools/benchmarks/bim_depths.py: one score per BIM depth; the deepest one
equals scoring the full encoder the way every other method is scored."""
import os.path as osp

from helpers import (REPO_ROOT, TINY_ARCH, run_scoring_tool,
                      save_random_checkpoint)
from mmengine.config import Config

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
    # block norms distinct from their init
    ckpt = save_random_checkpoint(cfg.model, str(tmp_path / 'bim.pth'), 0.05)

    out = str(tmp_path / 'out')
    rows = run_scoring_tool(TOOL, config, ckpt, fmnist_root, out, '--compare',
                            f'full={config}:{ckpt}')
    assert [(r['model'], r['depth']) for r in rows] == [('bim', 1), ('bim', 3),
                                                        ('bim', 4),
                                                        ('full', 4)]
    for row in rows:
        assert 0 <= row['knn_top1'] <= 100
        assert 0 <= row['linear_top1'] <= 100
    # depth K through forward_prefix == the un-masked full encoder
    assert rows[2]['knn_top1'] == rows[3]['knn_top1']
    assert '| bim | 3 |' in open(osp.join(out, 'bim_depths.md')).read()
