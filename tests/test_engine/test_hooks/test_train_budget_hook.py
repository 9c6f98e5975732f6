# Copyright (c) OpenMMLab. All rights reserved.
import math
import uuid

import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import DataLoader, Dataset

from mim_plugins.engine.hooks import TrainBudgetHook
from mim_plugins.engine.hooks import train_budget_hook


class Ones(Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, idx):
        return dict(inputs=torch.ones(2))


class Linear(BaseModel):
    """Loss (w * x).mean(); records the learning rate of every step."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(2))

    def forward(self, inputs, data_samples=None, mode='loss'):
        return dict(loss=(self.w * inputs).mean())


class EvalLog:
    """An `evaluate` callable that keeps its calls' `final` flags."""

    def __init__(self):
        self.calls = []

    def __call__(self, model, final):
        self.calls.append(final)
        return dict(w=float(model.w.detach()[0]))


def make_runner(tmp_path, hook, max_iters=100, batch_size=2):
    # 8 images in batches of 2: an epoch is 4 iterations
    return Runner(
        model=Linear(),
        work_dir=str(tmp_path),
        train_dataloader=DataLoader(Ones(), batch_size=batch_size),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.4)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=None, logger=None),
        custom_hooks=[hook],
        default_scope='mmpretrain',
        experiment_name=f'budget_{uuid.uuid4().hex[:8]}')


class LrProbe:
    """Keeps the learning rate each training step ran with."""

    def __init__(self, runner):
        self.lrs = []
        optimizer = runner.optim_wrapper.optimizer
        step = optimizer.step

        def logged_step(*args, **kwargs):
            self.lrs.append(optimizer.param_groups[0]['lr'])
            return step(*args, **kwargs)

        optimizer.step = logged_step


def test_lr_factor_warmup_then_cosine():
    hook = TrainBudgetHook(10, 'epochs', warmup=0.2, start_factor=0.1,
                           min_lr_ratio=0.1)
    assert hook.lr_factor(0.) == pytest.approx(0.1)
    assert hook.lr_factor(0.1) == pytest.approx(0.1 + 0.9 * 0.5)
    assert hook.lr_factor(0.2) == pytest.approx(1.)
    # half-way through the cosine part: the mean of 1 and min_lr_ratio
    assert hook.lr_factor(0.6) == pytest.approx(0.55)
    assert hook.lr_factor(1.) == pytest.approx(0.1)


def test_epoch_budget_stops_and_evaluates_at_fractions(tmp_path):
    evaluate = EvalLog()
    # 1.5 epochs of 4 iterations = 6 iterations
    hook = TrainBudgetHook(
        1.5, 'epochs', eval_points=3, evaluate=evaluate, warmup=0.5,
        start_factor=0.)
    runner = make_runner(tmp_path, hook)
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    probe = LrProbe(runner)
    runner.train()
    assert hook.iters == 6 and runner.iter == 6
    assert [r['iters'] for r in hook.history] == [0, 2, 4, 6]
    assert [r['fraction'] for r in hook.history] == [0, 1 / 3, 2 / 3, 1]
    assert evaluate.calls == [False, False, False, True]
    assert [r['images'] for r in hook.history] == [0, 4, 8, 12]
    assert hook.history[-1]['epochs'] == 1.5
    # the lr of step i follows the spent fraction i / 6 before it
    expected = [0.4 * hook.lr_factor(i / 6) for i in range(6)]
    assert probe.lrs == pytest.approx(expected)
    assert probe.lrs[0] == 0 and probe.lrs[3] == pytest.approx(0.4)


def test_flops_budget(tmp_path):
    hook = TrainBudgetHook(25., 'flops', flops_per_iter=10., eval_points=1)
    runner = make_runner(tmp_path, hook)
    runner.train()
    # ceil(25 / 10) iterations; every record has the FLOPs spent
    assert hook.iters == 3
    assert [r['flops'] for r in hook.history] == [0., 30.]


def test_seconds_budget_leaves_evaluation_out(tmp_path, monkeypatch):
    """With a clock that advances 1 s per reading, every iteration costs
    1 s and an evaluation 1 s that must not be counted."""
    ticks = iter(range(10**6))
    monkeypatch.setattr(train_budget_hook.time, 'perf_counter',
                        lambda: float(next(ticks)))
    evaluate = EvalLog()
    hook = TrainBudgetHook(4.5, 'seconds', eval_points=2, evaluate=evaluate)
    runner = make_runner(tmp_path, hook)
    runner.train()
    # 4 iterations leave 0.5 s: the 5th crosses the budget and ends the run
    assert hook.iters == 5
    assert [r['seconds'] for r in hook.history] == [0., 3., 5.]
    assert [r['iters'] for r in hook.history] == [0, 3, 5]
    assert hook.eval_seconds == 3.
    assert evaluate.calls == [False, False, True]


def test_max_iters_before_budget_closes_with_final_record(tmp_path):
    evaluate = EvalLog()
    hook = TrainBudgetHook(10, 'epochs', eval_points=2, evaluate=evaluate)
    runner = make_runner(tmp_path, hook, max_iters=3)
    runner.train()
    assert hook.iters == 3
    assert hook.history[-1]['final'] and evaluate.calls[-1] is True
    assert hook.history[-1]['fraction'] == pytest.approx(3 / 40)


@pytest.mark.parametrize('kwargs,match', [
    (dict(budget=1, unit='minutes'), r'`unit` must be one of'),
    (dict(budget=0, unit='seconds'), 'budget must be > 0'),
    (dict(budget=1, unit='flops'), 'flops_per_iter'),
    (dict(budget=1, eval_points=0), '`eval_points`'),
    (dict(budget=1, warmup=1.5), '`warmup`'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainBudgetHook(**kwargs)


def test_warmup_zero_is_cosine_from_the_start():
    hook = TrainBudgetHook(1, warmup=0.)
    assert hook.lr_factor(0.) == 1.
    assert hook.lr_factor(0.25) == pytest.approx(
        0.5 * (1 + math.cos(math.pi / 4)))
