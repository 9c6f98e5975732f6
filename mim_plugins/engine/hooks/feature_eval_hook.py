# Copyright (c) OpenMMLab. All rights reserved.
import time
from typing import Dict, List, Optional, Sequence

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS

from mim_plugins.evaluation import build_feature_eval_loaders, score_model
from mim_plugins.utils.checks import check_range


@HOOKS.register_module()
class FeatureEvalHook(Hook):
    """Score frozen features (kNN, linear probe) at chosen epochs.

    Uses the config's ``feature_eval_data``.  Evaluation time is kept out of
    the recorded pre-training wall time, so time-to-accuracy curves compare
    methods fairly.  Results are logged and kept in :attr:`history`.

    Args:
        eval_epochs (Sequence[int]): Epochs (1-based, after the epoch) at
            which to evaluate; 0 evaluates the initial weights before
            training.
        train_samples (int): Training images used as kNN bank and probe
            training set (0 = all). Defaults to 10000.
        test_samples (int): Test images (0 = all). Defaults to 10000.
        knn_k (int): kNN neighbours. Defaults to 20.
        probe_epochs (int): Linear-probe epochs (0 skips). Defaults to 100.
    """

    priority = 'LOW'

    def __init__(self,
                 eval_epochs: Sequence[int],
                 train_samples: int = 10000,
                 test_samples: int = 10000,
                 knn_k: int = 20,
                 probe_epochs: int = 100) -> None:
        if not eval_epochs or any(e < 0 for e in eval_epochs):
            raise ValueError('eval_epochs must be a non-empty list of epochs '
                             f'>= 0, got {eval_epochs}')
        check_range('train_samples', train_samples, 0, integer=True)
        check_range('test_samples', test_samples, 0, integer=True)
        check_range('knn_k', knn_k, 1, integer=True)
        check_range('probe_epochs', probe_epochs, 0, integer=True)
        self.eval_epochs = sorted(set(int(e) for e in eval_epochs))
        self.train_samples = train_samples
        self.test_samples = test_samples
        self.knn_k = knn_k
        self.probe_epochs = probe_epochs
        self.history: List[Dict] = []
        self._loaders: Optional[Dict] = None
        self._start = 0.
        self._eval_time = 0.

    def _evaluate(self, runner, epoch: int) -> None:
        t0 = time.time()
        if self._loaders is None:
            self._loaders = build_feature_eval_loaders(runner.cfg,
                                                       self.train_samples,
                                                       self.test_samples)
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        scores = score_model(model, self._loaders, self.knn_k,
                             self.probe_epochs)
        wall = t0 - self._start - self._eval_time
        self._eval_time += time.time() - t0
        record = dict(epoch=epoch, pretrain_seconds=wall, **scores)
        self.history.append(record)
        runner.logger.info('Feature evaluation: ' + ', '.join(
            f'{k}: {v:.2f}' if isinstance(v, float) else f'{k}: {v}'
            for k, v in record.items()))

    def before_train(self, runner) -> None:
        self._start = time.time()
        self._eval_time = 0.
        if 0 in self.eval_epochs:
            self._evaluate(runner, 0)

    def after_train_epoch(self, runner) -> None:
        epoch = runner.epoch + 1  # runner.epoch counts finished epochs - 1
        if epoch in self.eval_epochs:
            self._evaluate(runner, epoch)
