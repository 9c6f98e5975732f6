# Copyright (c) OpenMMLab. All rights reserved.
"""The validation split: held out of the end of the training set, disjoint
from everything a run learns from, and never pooled with test runs."""
import os.path as osp

import pytest
import torch
from helpers import REPO_ROOT
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mim_plugins.benchmarks import train_for_budget
from mim_plugins.evaluation.feature_eval import (build_feature_eval_loaders,
                                                 split_indices)

MAE = osp.join(
    REPO_ROOT, 'configs/mae/mae_vit-mini-p4_1xb256-coslr-10e_'
    'fashion-mnist.py')


def images(loader) -> torch.Tensor:
    return torch.cat([b['inputs'] for b in loader])


def test_split_indices():
    idx = split_indices(60000, 10000)
    assert idx['train'] == range(50000) and idx['val'] == range(50000, 60000)
    idx = split_indices(60000, 10000, train_samples=5000, eval_samples=2000)
    assert idx['train'] == range(5000) and idx['val'] == range(50000, 52000)
    # more than the images before the held-out ones: capped there
    idx = split_indices(100, 30, train_samples=90, eval_samples=50)
    assert idx['train'] == range(70) and idx['val'] == range(70, 100)
    for bad in (0, 100, -1):
        with pytest.raises(ValueError, match=r'val_images must be in \[1'):
            split_indices(100, bad)
    with pytest.raises(ValueError, match='train_samples must be >= 0'):
        split_indices(100, 10, train_samples=-5)


def test_loaders_hold_the_validation_images_out(fmnist_root):
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(MAE)
    cfg.data_root = fmnist_root
    everything = images(build_feature_eval_loaders(cfg, 0, 0)['train'])
    assert len(everything) == 320  # the fake training set
    val = build_feature_eval_loaders(cfg, 0, 0, split='val', val_images=100)
    test = build_feature_eval_loaders(
        cfg, 50, 30, split='test', val_images=100)
    # validation: the last 100 training images; the bank: the 220 before
    assert torch.equal(images(val['test']), everything[220:])
    assert torch.equal(images(val['train']), everything[:220])
    # scoring the test split keeps the same held-out images out of the bank
    assert torch.equal(images(test['train']), everything[:50])
    test_images = images(test['test'])
    assert len(test_images) == 30
    # the test loader reads the test file, not training images
    assert not any(
        torch.equal(img, train_img) for img in test_images[:5]
        for train_img in everything)
    with pytest.raises(ValueError, match="split='val'.*val_images > 0"):
        build_feature_eval_loaders(cfg, 10, 10, split='val')
    with pytest.raises(ValueError, match="split must be one of"):
        build_feature_eval_loaders(cfg, 10, 10, split='train')


def test_budgeted_run_records_disjoint_indices(fmnist_root, tmp_path):
    run = train_for_budget(
        MAE,
        1.,
        unit='epochs',
        work_dir=str(tmp_path / 'mae'),
        train_samples=0,
        data_root=fmnist_root,
        cfg_options={
            'train_dataloader.batch_size': 32,
            'train_dataloader.num_workers': 0,
            'train_dataloader.persistent_workers': False,
        },
        eval_points=1,
        eval_train_samples=40,
        eval_test_samples=0,
        knn_k=5,
        probe_epochs=2,
        finetune_samples=0,
        split='val',
        val_images=64)
    run.pop('model')
    # pre-training sees the 256 images before the 64 held out, no more
    assert run['train_images'] == 256 and run['epoch_length'] == 8
    assert run['pretrain_indices'] == [0, 256]
    assert run['val_indices'] == [256, 320]
    assert run['split'] == 'val' and run['val_images'] == 64
    assert run['curve'][-1]['iters'] == 8
