# Copyright (c) OpenMMLab. All rights reserved.
"""tools/benchmarks/feature_outputs.py: one score per backbone output (each
LocalMIM tap); the last one equals the benchmark tool's score."""
import os.path as osp

from helpers import (REPO_ROOT, run_scoring_tool, save_random_checkpoint,
                      tiny_fmnist_config)

from mim_plugins.evaluation import (build_feature_eval_loaders,
                                    build_scoring_model, score_model)

TOOL = osp.join(REPO_ROOT, 'tools/benchmarks/feature_outputs.py')


def hook_score(config: str, ckpt: str, data_root: str) -> dict:
    """What FeatureEvalHook scores for this model."""
    cfg, model = build_scoring_model(config, ckpt, data_root)
    return score_model(
        model, build_feature_eval_loaders(cfg, 200, 64), probe_epochs=5)


def test_scores_every_tap(tmp_path, fmnist_root):
    config, cfg = tiny_fmnist_config('localmim', str(tmp_path))
    # tap norms distinct from their init
    ckpt = save_random_checkpoint(cfg.model, str(tmp_path / 'lm.pth'), 0.05)

    out = str(tmp_path / 'out')
    rows = run_scoring_tool(TOOL, config, ckpt, fmnist_root, out)
    assert [(r['output'], r['layer']) for r in rows] == [(0, 0), (1, 1),
                                                         (2, 2), (3, 3)]
    # the taps are different features
    assert len({(r['knn_top1'], r['linear_top1']) for r in rows}) > 1
    # every row measures the collapse of its features
    assert all(0 < r['pc1_share'] <= 1 for r in rows)
    assert len({r['pc1_share'] for r in rows}) > 1
    assert '| 2 | 2 |' in open(osp.join(out, 'feature_outputs.md')).read()
    # the last tap is what the benchmark tool scores
    expected = hook_score(config, ckpt, fmnist_root)
    assert rows[-1]['knn_top1'] == expected['knn_top1']
    assert abs(rows[-1]['linear_top1'] - expected['linear_top1']) < 1e-6
    # "init" scores the seeded initial weights: other features, same rows
    init = run_scoring_tool(TOOL, config, 'init', fmnist_root, out)
    assert [r['layer'] for r in init] == [0, 1, 2, 3]
    assert [r['pc1_share'] for r in init] != [r['pc1_share'] for r in rows]


def test_cfg_options_score_intermediate_layers(tmp_path, fmnist_root):
    """A single-output encoder (MAE) scored at chosen layers."""
    config, cfg = tiny_fmnist_config('mae', str(tmp_path))
    ckpt = save_random_checkpoint(cfg.model, str(tmp_path / 'mae.pth'))

    rows = run_scoring_tool(TOOL, config, ckpt, fmnist_root,
                            str(tmp_path / 'out'), '--cfg-options',
                            'model.backbone.out_indices=[1,3]')
    assert [(r['output'], r['layer']) for r in rows] == [(0, 1), (1, 3)]
    # the last layer through the override == the config as it is
    expected = hook_score(config, ckpt, fmnist_root)
    assert rows[-1]['knn_top1'] == expected['knn_top1']
