# Copyright (c) OpenMMLab. All rights reserved.
"""Pre-train a config for a fixed budget and score it along the way.

The common core of the equal-budget benchmark
(``tools/benchmarks/fashion_mnist.py``) and the demo (``tools/run_demo.py``):
one run trains a Fashion-MNIST pre-training config with mmengine's Runner
until a budget of wall-clock seconds, training FLOPs or epochs is spent
(:class:`~mim_plugins.engine.hooks.TrainBudgetHook`), and scores the frozen
encoder (weighted kNN, linear probe) at fixed fractions of the budget and a
low-label fine-tune at its start and end. Evaluation time is kept out of
the budget.
"""
import contextlib
import os
import os.path as osp
import time
import uuid
from typing import Callable, Dict, Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from mim_plugins.datasets import apply_data_root
from mim_plugins.engine.hooks import TrainBudgetHook
from mim_plugins.evaluation.feature_eval import (build_feature_eval_loaders,
                                                 check_split, score_model,
                                                 split_indices, train_set_size)
from mim_plugins.utils.checks import check_choice, check_range
from .budget_runs import (budget_config, console_level, lr_schedule,
                          machine_info, quiet_runner)
from .finetune import low_label_finetune
from .flops import train_flops_per_image

FINETUNE_AT = ('init', 'final')


class BudgetEvaluator:
    """Scores of a model at one point of a budgeted run.

    kNN and the linear probe run at every point; the low-label fine-tune
    (:func:`low_label_finetune`) at the points named in ``finetune_at``
    (``'init'``: before training, the random-initialisation floor;
    ``'final'``: the end of the budget).

    Args:
        cfg (Config): The pre-training config (``feature_eval_data``).
        train_samples (int): kNN bank and probe training images.
        test_samples (int): Test images of every measure.
        knn_k (int): kNN neighbours.
        probe_epochs (int): Linear-probe epochs.
        finetune_samples (int): Labelled training images of the fine-tune
            (0 skips it).
        finetune_epochs (int): Fine-tune epochs.
        finetune_at (Sequence[str]): Subset of ``('init', 'final')``.
        seed (int): Seed of the fine-tune head.
        split (str): The scored images: ``'test'`` or ``'val'`` (the last
            ``val_images`` training images). Defaults to ``'test'``.
        val_images (int): Training images held out as validation; the
            kNN bank, probe and fine-tune labels come from before them.
            Defaults to 0 (none).
        first_is_init (bool): The first call scores the network before
            training (``'init'``); False when the run skips that point.
            Defaults to True.
    """

    def __init__(self,
                 cfg: Config,
                 train_samples: int = 5000,
                 test_samples: int = 2000,
                 knn_k: int = 20,
                 probe_epochs: int = 100,
                 finetune_samples: int = 600,
                 finetune_epochs: int = 10,
                 finetune_at: Sequence[str] = FINETUNE_AT,
                 seed: int = 0,
                 split: str = 'test',
                 val_images: int = 0,
                 first_is_init: bool = True) -> None:
        for point in finetune_at:
            check_choice('finetune_at', point, FINETUNE_AT)
        check_range('finetune_samples', finetune_samples, 0, integer=True)
        self.loaders = build_feature_eval_loaders(
            cfg,
            train_samples,
            test_samples,
            split=split,
            val_images=val_images)
        self.finetune_train = None
        if finetune_samples:
            self.finetune_train = build_feature_eval_loaders(
                cfg, finetune_samples, 1, batch_size=32,
                val_images=val_images)['train']
        self.knn_k = knn_k
        self.probe_epochs = probe_epochs
        self.finetune_epochs = finetune_epochs
        self.finetune_at = tuple(finetune_at)
        self.seed = seed
        self._started = not first_is_init

    def __call__(self, model: torch.nn.Module, final: bool) -> Dict:
        point = 'final' if final else (
            'init' if not self._started else 'middle')
        self._started = True
        scores = score_model(model, self.loaders, self.knn_k,
                             self.probe_epochs)
        if self.finetune_train is not None and point in self.finetune_at:
            scores['finetune_top1'] = low_label_finetune(
                model,
                self.finetune_train,
                self.loaders['test'],
                epochs=self.finetune_epochs,
                seed=self.seed)
        return scores


def train_for_budget(config: str,
                     budget: float,
                     unit: str = 'seconds',
                     seed: int = 0,
                     work_dir: str = 'work_dirs/budget',
                     train_samples: int = 0,
                     data_root: Optional[str] = None,
                     cfg_options: Optional[dict] = None,
                     lr_scale: float = 1.,
                     batch_size: Optional[int] = None,
                     warmup: Optional[float] = None,
                     eval_points: int = 8,
                     eval_train_samples: int = 5000,
                     eval_test_samples: int = 2000,
                     knn_k: int = 20,
                     probe_epochs: int = 100,
                     finetune_samples: int = 600,
                     finetune_epochs: int = 10,
                     finetune_at: Sequence[str] = FINETUNE_AT,
                     split: str = 'test',
                     val_images: int = 0,
                     eval_init: bool = True,
                     quiet: bool = True,
                     on_record: Optional[Callable] = None) -> Dict:
    """Pre-train ``config`` for ``budget`` ``unit`` and score it on the way.

    Args:
        config (str): A Fashion-MNIST pre-training config.
        budget (float): Seconds of training, training FLOPs or epochs.
        unit (str): ``'seconds'``, ``'flops'`` or ``'epochs'``.
        seed (int): Seed of the run (weights, masks, data order).
        work_dir (str): Where the Runner's log and ``final.pth`` go.
        train_samples (int): Pre-train on the first N training images
            (0 = all 60000).
        data_root (str, optional): Fashion-MNIST folder.
        cfg_options (dict, optional): Config overrides.
        lr_scale (float): Multiplies the config's learning rate (the
            knob a learning-rate sweep turns; warm-up and cosine keep their
            shape).
        batch_size (int, optional): Pre-training batch instead of the
            config's (the learning rate is not rescaled: pair it with
            ``lr_scale``). Defaults to None.
        warmup (float, optional): Fraction of the budget with the linear
            warm-up instead of the config's. Defaults to None.
        eval_points (int): Evaluations at ``k / eval_points`` of the budget.
        eval_train_samples (int): kNN bank / probe training images.
        eval_test_samples (int): Test images.
        knn_k (int): kNN neighbours.
        probe_epochs (int): Linear-probe epochs.
        finetune_samples (int): Labelled images of the low-label fine-tune
            (0 skips it).
        finetune_epochs (int): Fine-tune epochs.
        finetune_at (Sequence[str]): When to fine-tune (``'init'``,
            ``'final'``).
        split (str): What every evaluation scores: ``'test'`` (the test
            images) or ``'val'`` (the last ``val_images`` training images),
            the split on which choices are made. Defaults to ``'test'``.
        val_images (int): Training images held out at the end of the
            training set as validation (:func:`split_indices`): pre-training
            and every labelled image of the evaluation come from before
            them, whichever split is scored. Defaults to 0 (none held out).
        eval_init (bool): Score the network before training too (the
            random-initialisation floor). Defaults to True.
        quiet (bool): Keep the Runner's INFO lines off the console.
        on_record (Callable, optional): ``on_record(record, hook)`` after
            every evaluation.

    Returns:
        dict: The run: config, seed, budget, cost per iteration, the
        records of every evaluation point (``curve``), times and the machine
        (all JSON-ready), and ``model``, the trained algorithm.
    """
    check_choice('unit', unit, ('seconds', 'flops', 'epochs'))
    if not lr_scale > 0:
        raise ValueError(f'lr_scale must be > 0, got {lr_scale!r}')
    if batch_size is not None and not (isinstance(batch_size, int)
                                       and batch_size >= 1):
        raise ValueError(f'batch_size must be an int >= 1, got {batch_size!r}')
    if warmup is not None and not 0 <= warmup < 1:
        raise ValueError(f'warmup must be in [0, 1), got {warmup!r}')
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    # every method's optimizer (BIM's per-block ones included) is built
    # from this one entry
    cfg.optim_wrapper.optimizer.lr *= lr_scale
    if batch_size is not None:
        cfg.train_dataloader.batch_size = batch_size
    if data_root:
        cfg.data_root = data_root
    apply_data_root(cfg)
    check_split(split, val_images)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    if val_images:
        n_train = train_set_size(cfg)
        indices = split_indices(n_train, val_images, train_samples,
                                eval_test_samples)
        # the first images of the training set, up to the held-out ones
        cfg.train_dataloader.dataset.indices = len(indices['train'])
        split_record = dict(
            split=split,
            val_images=val_images,
            pretrain_indices=[0, len(indices['train'])],
            val_indices=[indices['val'].start, indices['val'].stop])
    else:
        if train_samples:
            cfg.train_dataloader.dataset.indices = train_samples
        split_record = dict(split=split, val_images=0)
    batch = cfg.train_dataloader.batch_size
    quiet_ctx = console_level if quiet else contextlib.nullcontext
    with quiet_ctx():
        epoch_length = len(Runner.build_dataloader(cfg.train_dataloader))
        # MixMIM pairs images by flipping the batch: count with an even one
        flops_per_iter = train_flops_per_image(cfg, batch_size=2) * batch
    schedule = lr_schedule(cfg)
    if warmup is not None:
        schedule['warmup'] = warmup
    budget_config(cfg, unit, budget, flops_per_iter, epoch_length)
    cfg.randomness = dict(seed=seed, diff_rank_seed=False)
    cfg.work_dir = work_dir
    cfg.launcher = 'none'
    cfg.experiment_name = f'budget_{uuid.uuid4().hex[:8]}'
    os.makedirs(work_dir, exist_ok=True)
    with quiet_ctx():
        evaluator = BudgetEvaluator(
            cfg,
            train_samples=eval_train_samples,
            test_samples=eval_test_samples,
            knn_k=knn_k,
            probe_epochs=probe_epochs,
            finetune_samples=finetune_samples,
            finetune_epochs=finetune_epochs,
            finetune_at=finetune_at,
            seed=seed,
            split=split,
            val_images=val_images,
            first_is_init=eval_init)
    if quiet:
        runner = quiet_runner(cfg)
    else:
        runner = Runner.from_cfg(cfg)
    hook = TrainBudgetHook(
        budget,
        unit,
        flops_per_iter=flops_per_iter,
        eval_points=eval_points,
        evaluate=evaluator,
        eval_init=eval_init,
        on_record=on_record,
        **schedule)
    runner.register_hook(hook)
    t0 = time.perf_counter()
    runner.train()
    wall = time.perf_counter() - t0
    checkpoint = osp.join(work_dir, 'final.pth')
    runner.save_checkpoint(
        work_dir,
        'final.pth',
        save_optimizer=False,
        save_param_scheduler=False)
    return dict(
        config=config,
        algorithm=cfg.model.type,
        seed=seed,
        unit=unit,
        budget=budget,
        batch_size=batch,
        epoch_length=epoch_length,
        train_images=len(runner.train_dataloader.dataset),
        flops_per_iter=flops_per_iter,
        flops_per_image=flops_per_iter / batch,
        lr=cfg.optim_wrapper.optimizer.lr,
        schedule=schedule,
        curve=hook.history,
        train_seconds=hook.seconds,
        eval_seconds=hook.eval_seconds,
        wall_seconds=wall,
        checkpoint=checkpoint,
        log_file=osp.join(runner.log_dir, f'{runner.timestamp}.log'),
        model=runner.model,
        **split_record,
        **machine_info())
