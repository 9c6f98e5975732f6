# Copyright (c) OpenMMLab. All rights reserved.
"""tools/benchmarks/feature_outputs.py: one score per backbone output (each
LocalMIM tap); the last one equals the benchmark tool's score."""
import json
import os.path as osp
import subprocess
import sys

import torch
from conftest import REPO_ROOT, TINY_ARCH, subprocess_env
from mmengine.config import Config
from mmpretrain.registry import MODELS

import mim_plugins  # noqa: F401
from mim_plugins.evaluation import (build_feature_eval_loaders,
                                    build_scoring_model, score_model)

TOOL = osp.join(REPO_ROOT, 'tools/benchmarks/feature_outputs.py')
CONFIG = osp.join(
    REPO_ROOT,
    'configs/localmim/localmim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py')


def test_scores_every_tap(tmp_path, fmnist_root):
    cfg = Config.fromfile(CONFIG)
    cfg.model.backbone.arch = dict(TINY_ARCH)  # 4 layers, 32 wide
    cfg.model.backbone.out_indices = [0, 1, 2, 3]
    cfg.model.neck.update(
        embed_dim=32, decoder_embed_dim=16, decoder_num_heads=2)
    config = str(tmp_path / 'localmim_tiny.py')
    cfg.dump(config)

    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    with torch.no_grad():  # tap norms distinct from their init
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ckpt = str(tmp_path / 'localmim.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)

    out = tmp_path / 'out'
    res = subprocess.run([
        sys.executable, TOOL, config, ckpt, '--data-root', fmnist_root,
        '--eval-train-samples', '200', '--eval-test-samples', '64',
        '--probe-epochs', '5', '--out',
        str(out)
    ],
                         env=subprocess_env(),
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = json.load(open(out / 'feature_outputs.json'))['rows']
    assert [(r['output'], r['layer']) for r in rows] == [(0, 0), (1, 1),
                                                         (2, 2), (3, 3)]
    # the taps are different features
    assert len({(r['knn_top1'], r['linear_top1']) for r in rows}) > 1
    assert '| 2 | 2 |' in (out / 'feature_outputs.md').read_text()

    # the last tap is what fashion_mnist.py's FeatureEvalHook scores
    cfg, loaded = build_scoring_model(config, ckpt, fmnist_root)
    loaders = build_feature_eval_loaders(cfg, 200, 64)
    expected = score_model(loaded, loaders, probe_epochs=5)
    assert rows[-1]['knn_top1'] == expected['knn_top1']
    assert abs(rows[-1]['linear_top1'] - expected['linear_top1']) < 1e-6


def test_cfg_options_score_intermediate_layers(tmp_path, fmnist_root):
    """A single-output encoder (MAE) scored at chosen layers."""
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs/mae',
                 'mae_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py'))
    cfg.model.backbone.arch = dict(TINY_ARCH)
    cfg.model.neck.update(embed_dim=32, decoder_embed_dim=16)
    cfg.model.neck.decoder_num_heads = 2
    config = str(tmp_path / 'mae_tiny.py')
    cfg.dump(config)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    ckpt = str(tmp_path / 'mae.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)

    out = tmp_path / 'out'
    res = subprocess.run([
        sys.executable, TOOL, config, ckpt, '--data-root', fmnist_root,
        '--eval-train-samples', '200', '--eval-test-samples', '64',
        '--probe-epochs', '5', '--out',
        str(out), '--cfg-options', 'model.backbone.out_indices=[1,3]'
    ],
                         env=subprocess_env(),
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = json.load(open(out / 'feature_outputs.json'))['rows']
    assert [(r['output'], r['layer']) for r in rows] == [(0, 1), (1, 3)]
    # the last layer through the override == the config as it is
    cfg, loaded = build_scoring_model(config, ckpt, fmnist_root)
    expected = score_model(
        loaded, build_feature_eval_loaders(cfg, 200, 64), probe_epochs=5)
    assert rows[-1]['knn_top1'] == expected['knn_top1']
