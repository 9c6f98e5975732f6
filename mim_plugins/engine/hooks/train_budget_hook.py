# Copyright (c) OpenMMLab. All rights reserved.
import math
import time
from typing import Callable, Dict, List, Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS

from mim_plugins.utils.checks import check_choice, check_range

BUDGET_UNITS = ('seconds', 'flops', 'epochs')


@HOOKS.register_module()
class TrainBudgetHook(Hook):
    """Train for a fixed budget of wall-clock seconds, FLOPs or epochs.

    Methods that differ in cost per image are only comparable at an equal
    budget, so this hook ends training when the budget is spent, whatever the
    number of iterations, and drives the learning rate by the spent fraction
    ``p`` of the budget instead of the iteration count: a linear warm-up over
    ``p < warmup`` from ``start_factor`` of each parameter group's learning
    rate, then a cosine decay to ``min_lr_ratio`` of it at ``p = 1`` (the
    configs' warm-up + cosine recipe, with the budget as its length).  The
    configs' own ``param_scheduler`` must therefore be removed.

    Spent seconds are the wall-clock time of the training iterations, data
    loading included; the time of the evaluations this hook runs is not
    counted. Spent FLOPs are ``iterations * flops_per_iter``; spent epochs
    ``iterations / len(train_dataloader)``. Use it with
    ``IterBasedTrainLoop`` (which stops within an epoch) and enough
    ``max_iters`` for the budget. The spent budget is not kept in
    checkpoints: a resumed run starts a new budget (the equal-budget
    benchmark resumes whole runs instead).

    Args:
        budget (float): The budget, in ``unit``.
        unit (str): ``'seconds'``, ``'flops'`` or ``'epochs'``.
        flops_per_iter (float, optional): Training FLOPs of one iteration;
            required for ``unit='flops'``, and recorded for the others.
        eval_points (int): The budget fractions ``k / eval_points``
            (k = 1 .. eval_points) at which ``evaluate`` runs. Defaults to 8.
        evaluate (Callable, optional): ``evaluate(model, final)`` returns a
            dict of scores of the unwrapped model (``final`` is True at the
            end of the budget); called before training too (fraction 0, the
            random-initialisation floor) when ``eval_init`` is set.
        eval_init (bool): Evaluate before the first iteration.
            Defaults to True.
        warmup (float): Fraction of the budget with a linear warm-up.
            Defaults to 0.1.
        start_factor (float): Learning-rate factor at the start of the
            warm-up. Defaults to 1e-4.
        min_lr_ratio (float): Learning-rate factor at the end of the budget.
            Defaults to 0.
        on_record (Callable, optional): Called with every record (and the
            hook) after an evaluation, e.g. to print progress.
    """

    priority = 'VERY_HIGH'  # sets the learning rate before other hooks

    def __init__(self,
                 budget: float,
                 unit: str = 'seconds',
                 flops_per_iter: Optional[float] = None,
                 eval_points: int = 8,
                 evaluate: Optional[Callable] = None,
                 eval_init: bool = True,
                 warmup: float = 0.1,
                 start_factor: float = 1e-4,
                 min_lr_ratio: float = 0.,
                 on_record: Optional[Callable] = None) -> None:
        check_choice('unit', unit, BUDGET_UNITS)
        if not budget > 0:
            raise ValueError(f'budget must be > 0 {unit}, got {budget}')
        if unit == 'flops' and not (flops_per_iter or 0) > 0:
            raise ValueError("unit='flops' needs flops_per_iter > 0, got "
                             f'{flops_per_iter}')
        check_range('eval_points', eval_points, 1, integer=True)
        check_range('warmup', warmup, 0., 1.)
        check_range('start_factor', start_factor, 0., 1.)
        check_range('min_lr_ratio', min_lr_ratio, 0., 1.)
        self.budget = float(budget)
        self.unit = unit
        self.flops_per_iter = flops_per_iter
        self.eval_points = eval_points
        self.evaluate = evaluate
        self.eval_init = eval_init
        self.warmup = warmup
        self.start_factor = start_factor
        self.min_lr_ratio = min_lr_ratio
        self.on_record = on_record
        self.history: List[Dict] = []
        self.iters = 0
        self.seconds = 0.
        self.eval_seconds = 0.
        self._mark = 0.
        self._next_point = 1
        self._epoch_length = 1
        self._base_lrs: List[tuple] = []

    # -- budget accounting -------------------------------------------------
    def spent(self) -> float:
        """The budget spent so far, in ``unit``."""
        if self.unit == 'seconds':
            return self.seconds
        if self.unit == 'flops':
            return self.iters * self.flops_per_iter
        return self.iters / self._epoch_length

    @property
    def progress(self) -> float:
        """Spent fraction of the budget, in [0, 1]."""
        return min(1., self.spent() / self.budget)

    def lr_factor(self, progress: float) -> float:
        """Learning-rate factor at a spent fraction of the budget."""
        if progress < self.warmup:
            return self.start_factor + (1 - self.start_factor) * (
                progress / self.warmup)
        span = max(1e-12, 1. - self.warmup)
        cos = 0.5 * (1 + math.cos(math.pi * (progress - self.warmup) / span))
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * cos

    # -- hook points -------------------------------------------------------
    def before_train(self, runner) -> None:
        self._epoch_length = max(1, len(runner.train_dataloader))
        wrappers = runner.optim_wrapper
        # OptimWrapperDict (BIM: one wrapper per block) or one wrapper
        wrappers = wrappers.optim_wrappers.values() if hasattr(
            wrappers, 'optim_wrappers') else [wrappers]
        self._base_lrs = [(group, group['lr']) for wrapper in wrappers
                          for group in wrapper.optimizer.param_groups]
        self.history, self.iters, self.seconds = [], 0, 0.
        self.eval_seconds, self._next_point = 0., 1
        if self.eval_init:
            self._record(runner, 0., final=False)
        self._mark = time.perf_counter()

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        factor = self.lr_factor(self.progress)
        for group, base in self._base_lrs:
            group['lr'] = base * factor

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        now = time.perf_counter()
        self.iters += 1
        self.seconds += now - self._mark
        done = self.spent() >= self.budget
        point = None
        while self._next_point <= self.eval_points and (
                done or self.spent() >= self.budget * self._next_point /
                self.eval_points):
            point = self._next_point
            self._next_point += 1
        if point is not None:
            self._record(runner, point / self.eval_points, final=done)
        if done:
            runner.train_loop.stop_training = True
        self._mark = time.perf_counter()

    def after_train(self, runner) -> None:
        # max_iters ran out before the budget: close with a final record
        if not self.history or not self.history[-1].get('final'):
            self._record(runner, self.progress, final=True)

    def _record(self, runner, fraction: float, final: bool) -> None:
        t0 = time.perf_counter()
        record = dict(
            fraction=fraction,
            final=final,
            iters=self.iters,
            images=self.iters * runner.train_dataloader.batch_size,
            seconds=self.seconds,
            epochs=self.iters / self._epoch_length,
            # where the schedule stands: min_lr_ratio at the budget's end
            lr_factor=self.lr_factor(self.progress))
        if self.flops_per_iter:
            record['flops'] = self.iters * self.flops_per_iter
        if self.evaluate is not None:
            model = runner.model.module if is_model_wrapper(
                runner.model) else runner.model
            record.update(self.evaluate(model, final))
        self.eval_seconds += time.perf_counter() - t0
        record['eval_seconds'] = self.eval_seconds
        self.history.append(record)
        if self.on_record is not None:
            self.on_record(record, self)
