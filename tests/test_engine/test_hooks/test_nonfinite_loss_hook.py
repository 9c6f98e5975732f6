# Copyright (c) OpenMMLab. All rights reserved.
import os.path as osp
import uuid

import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import DataLoader, Dataset

from mim_plugins.engine.hooks import NonFiniteLossHook


class Ones(Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, idx):
        return dict(inputs=torch.ones(2))


class NaNAt(BaseModel):
    """Loss (w * x).sum(); NaN at the `nan_at`-th training step."""

    def __init__(self, nan_at):
        super().__init__()
        self.w = nn.Parameter(torch.ones(2))
        self.nan_at = nan_at
        self.steps = 0

    def forward(self, inputs, data_samples=None, mode='loss'):
        self.steps += 1
        loss = (self.w * inputs).sum() / len(inputs)
        if self.steps == self.nan_at:
            loss = loss * float('nan')
        return dict(loss_main=loss, loss_aux=loss.detach() * 0)


def make_runner(tmp_path, hook, nan_at=3):
    return Runner(
        model=NaNAt(nan_at),
        work_dir=str(tmp_path),
        train_dataloader=DataLoader(Ones(), batch_size=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=False, max_iters=5),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1,
                            by_epoch=False)),
        custom_hooks=[hook],
        default_scope='mmpretrain',
        experiment_name=f'nan_{uuid.uuid4().hex[:8]}')


def test_stop_names_iteration_and_loss(tmp_path):
    runner = make_runner(tmp_path, NonFiniteLossHook())
    with pytest.raises(RuntimeError, match=r'iteration 3 .*loss_main=nan'):
        runner.train()
    assert osp.isfile(osp.join(tmp_path, 'iter_2.pth'))
    assert not osp.exists(osp.join(tmp_path, 'iter_3.pth'))
    good = torch.load(osp.join(tmp_path, 'iter_2.pth'), weights_only=False)
    assert torch.isfinite(good['state_dict']['w']).all()


def test_skip_leaves_weights_and_goes_on(tmp_path):
    hook = NonFiniteLossHook(action='skip')
    runner = make_runner(tmp_path, hook)
    runner.train()
    assert hook.skipped == 1
    # 5 steps, one skipped: 4 SGD updates of lr * grad (grad = 1)
    assert torch.allclose(runner.model.w.detach(), torch.full((2, ), 0.6))
    assert osp.isfile(osp.join(tmp_path, 'iter_5.pth'))


def test_bad_action():
    with pytest.raises(ValueError, match='action must be one of'):
        NonFiniteLossHook(action='ignore')
