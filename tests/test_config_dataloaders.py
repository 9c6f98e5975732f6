# Copyright (c) OpenMMLab. All rights reserved.
"""Every pre-training and classification config builds its dataloaders.

A config inheriting an `mmpretrain::` base gets `_scope_` injected into the
inherited `collate_fn`, which the Runner would pass on to the collate
function (a TypeError at the first batch). The real loader configs are built
by the Runner with a tiny in-memory dataset in place of ImageNet.
"""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    p for p in glob.glob(
        osp.join(REPO_ROOT, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p.split(osp.sep)
    and 'benchmarks/mm' not in p)  # mmdet/mmseg loaders need their datasets


@pytest.mark.parametrize(
    'path', CONFIGS, ids=[osp.relpath(p, REPO_ROOT) for p in CONFIGS])
def test_dataloaders_build_and_collate(path):
    cfg = Config.fromfile(path)
    fake = [dict(inputs=torch.full((1, 2, 2), float(i))) for i in range(4)]
    loaders = [
        k for k in ('train_dataloader', 'val_dataloader', 'test_dataloader')
        if cfg.get(k)
    ]
    assert loaders
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        for key in loaders:
            loader_cfg = cfg[key].to_dict()
            loader_cfg.update(
                dataset=fake,
                batch_size=2,
                num_workers=0,
                persistent_workers=False)
            batch = next(iter(Runner.build_dataloader(loader_cfg)))
            # stacked by default_collate, a list without a collate_fn
            assert len(batch['inputs']) == 2, key
