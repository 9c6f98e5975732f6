# Copyright (c) OpenMMLab. All rights reserved.
"""Baselines without training: pixels and LocalMIM's HOG, scored like the
encoders."""
import os.path as osp

import pytest
import torch
from helpers import REPO_ROOT
from mmengine.config import Config

from mim_plugins.benchmarks.baselines import (hog_mean_features, localmim_hogs,
                                              pixel_features, score_baselines)
from mim_plugins.evaluation.feature_eval import (build_feature_eval_loaders,
                                                 knn_classify)

CONFIGS = {
    m:
    osp.join(
        REPO_ROOT, f'configs/{m}/{m}_vit-mini-p4_1xb256-coslr-10e_'
        'fashion-mnist.py')
    for m in ('mae', 'localmim')
}


def edge(vertical: bool, at: int, size: int = 32) -> torch.Tensor:
    """A (1, 1, size, size) image: 1 before column (or row) ``at``, 0
    after."""
    img = torch.zeros(1, 1, size, size)
    if vertical:
        img[..., :at] = 1.
    else:
        img[..., :at, :] = 1.
    return img


def test_hog_of_an_edge_by_hand():
    hogs = localmim_hogs(Config.fromfile(CONFIGS['localmim']))['hogs']
    # the Mini config's four scales: cells of 1, 2, 4 and 8 px, 9 bins
    assert [h.cell_size for h in hogs] == [1, 2, 4, 8]
    assert all(h.n_bins == 9 for h in hogs)
    # A vertical step: the Sobel pair gives g0 = 4, g1 = 0 on the two
    # columns beside it, orientation atan2(4, 0) = 90 degrees -> bin
    # floor(0.5 * 9) = 4. Every cell that holds gradient is then the unit
    # vector e4 and a flat cell stays zero, so a scale's cell mean is e4
    # times the share of cells touching the edge: 2 of 32 columns of 1-px
    # cells, 2 of 16 of 2-px cells, 2 of 8 of 4-px cells, 2 of 4 of 8-px.
    feats = hog_mean_features(hogs, edge(True, 16))
    expected = torch.zeros(4, 9)
    expected[:, 4] = torch.tensor([2 / 32, 2 / 16, 2 / 8, 2 / 4])
    torch.testing.assert_close(feats.view(4, 9), expected)
    # a horizontal step: orientation atan2(0, 4) = 0 -> bin 0
    feats = hog_mean_features(hogs, edge(False, 16))
    expected = torch.zeros(4, 9)
    expected[:, 0] = torch.tensor([2 / 32, 2 / 16, 2 / 8, 2 / 4])
    torch.testing.assert_close(feats.view(4, 9), expected)
    img = torch.arange(8.).view(1, 2, 2, 2)
    assert torch.equal(pixel_features(img), torch.arange(8.).view(1, 8))


def test_baselines_score_like_the_encoders(fmnist_root):
    cfg = Config.fromfile(CONFIGS['mae'])
    cfg.data_root = fmnist_root
    from mmengine.registry import init_default_scope
    init_default_scope('mmpretrain')
    loaders = build_feature_eval_loaders(cfg, 100, 40)
    scores = score_baselines(
        cfg,
        loaders,
        Config.fromfile(CONFIGS['localmim']),
        knn_k=5,
        probe_epochs=20)
    assert set(scores) == {'pixels', 'hog_mean', 'hog_patches'}
    # 1 x 32 x 32 pixels; 4 scales x 9 bins; 8 x 8 cells of 4 px x 9 bins
    assert [scores[k]['dims']
            for k in ('pixels', 'hog_mean', 'hog_patches')] == [1024, 36, 576]

    # the pixel baseline by hand: the padded images normalised with the
    # config's mean and std, flattened, through the same kNN
    def by_hand(loader):
        batches = list(loader)
        x = torch.cat([b['inputs'] for b in batches]).float()
        x = (x - 72.94) / 90.02
        y = torch.cat(
            [ds.gt_label for b in batches for ds in b['data_samples']])
        return x.flatten(1), y

    assert scores['pixels']['knn_top1'] == knn_classify(
        *by_hand(loaders['train']), *by_hand(loaders['test']), k=5)
    # the fake classes are bright bars at different heights: pixels find
    # them, and the HOG of every cell is well above chance (10 %)
    assert scores['pixels']['knn_top1'] == 100.
    assert scores['hog_patches']['knn_top1'] > 50.
    for value in scores.values():
        assert 0 <= value['linear_top1'] <= 100
    # without a LocalMIM config: pixels only
    assert set(score_baselines(cfg, loaders, None, 5, 0)) == {'pixels'}
    pixel_cfg = Config.fromfile(CONFIGS['localmim'])
    pixel_cfg.model.head.target = 'pixel'
    with pytest.raises(ValueError, match="head.target='hog'"):
        score_baselines(cfg, loaders, pixel_cfg, 5, 0)
