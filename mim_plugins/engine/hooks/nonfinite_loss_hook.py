# Copyright (c) OpenMMLab. All rights reserved.
import functools
import math
from typing import Dict, List, Optional

import torch
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


def _scalar(value) -> Optional[float]:
    if torch.is_tensor(value):
        return float(value.detach().float().mean())
    return float(value) if isinstance(value, (int, float)) else None


def _non_finite(log_vars: Optional[Dict]) -> List[str]:
    """Names of the loss entries of ``log_vars`` that are NaN or Inf."""
    return [
        name for name, value in (log_vars or {}).items() if 'loss' in name
        and _scalar(value) is not None and not math.isfinite(_scalar(value))
    ]


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop at (or skip) the first training step with a NaN/Inf loss.

    mmdet's ``CheckInvalidLossHook`` asserts on the total loss every N
    iterations; this hook checks every iteration, names every non-finite
    loss entry (``loss_block2`` tells the BIM block), and either

    - ``action='stop'`` (default): raises before any later hook of the
      iteration runs -- in particular before the checkpoint hook, so the last
      checkpoint on disk is the last good one; or
    - ``action='skip'``: guards every optimizer wrapper's ``update_params``
      so a non-finite loss is neither back-propagated nor stepped (gradients
      are cleared), logs a warning and goes on; ``skipped`` counts the
      skipped updates.

    Args:
        action (str): ``'stop'`` or ``'skip'``. Defaults to ``'stop'``.
    """

    priority = 'VERY_HIGH'  # before CheckpointHook / LoggerHook
    ACTIONS = ('stop', 'skip')

    def __init__(self, action: str = 'stop') -> None:
        if action not in self.ACTIONS:
            raise ValueError(f'action must be one of {self.ACTIONS}, got '
                             f'{action!r}')
        self.action = action
        self.skipped = 0

    def before_train(self, runner) -> None:
        if self.action != 'skip':
            return
        wrappers = runner.optim_wrapper
        wrappers = wrappers.values() if hasattr(wrappers, 'values') and \
            hasattr(wrappers, 'optim_wrappers') else [wrappers]
        for wrapper in wrappers:
            if getattr(wrapper, '_nonfinite_guarded', False):
                continue
            wrapper.update_params = self._guard(wrapper, wrapper.update_params)
            wrapper._nonfinite_guarded = True

    def _guard(self, wrapper, update_params):

        @functools.wraps(update_params)
        def guarded(loss, *args, **kwargs):
            if torch.isfinite(loss.detach()).all():
                return update_params(loss, *args, **kwargs)
            self.skipped += 1
            wrapper.zero_grad()

        return guarded

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        bad = _non_finite(outputs)
        if not bad:
            return
        where = f'iteration {runner.iter + 1} (epoch {runner.epoch + 1})'
        values = ', '.join(f'{k}={_scalar(outputs[k]):g}' for k in bad)
        if self.action == 'stop':
            raise RuntimeError(
                f'Non-finite loss at {where}: {values}. Training stopped; '
                'the last checkpoint in the work dir is from before this '
                "step. Use NonFiniteLossHook(action='skip') to skip such "
                'steps instead.')
        runner.logger.warning(f'Non-finite loss at {where}: {values}; '
                              f'update skipped ({self.skipped} so far).')
