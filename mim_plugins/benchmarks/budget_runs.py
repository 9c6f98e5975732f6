# Copyright (c) OpenMMLab. All rights reserved.
"""How a budgeted run is set up: its learning-rate shape, its config, a
quiet Runner and the machine it ran on."""
import contextlib
import logging
import math
import os
import platform
import sys
from typing import Dict, Sequence

import torch
from mmengine.config import Config
from mmengine.runner import Runner

# the methods of the equal-budget comparison, in table order, by their
# config folder, with the names the tables print
METHOD_NAMES = dict(
    mae='MAE',
    bim='BIM',
    prmim='PR-MIM',
    localmim='LocalMIM',
    mixmim='MixMIM (ViT)')
# compositions, reported after the methods when a run names them
COMPOSITION_NAMES = {'bim-localmim': 'BIM×LocalMIM'}


def parse_lr_scale(items: Sequence[str],
                   methods: Sequence[str] = ()) -> Dict[str, float]:
    """Learning-rate scales of the compared methods from ``[METHOD=]SCALE``
    items.

    ``['3', 'localmim=1']`` gives every method 3 and LocalMIM 1 (a
    METHOD=SCALE item wins over a bare SCALE, whatever their order). A
    composition has a scale only when ``methods`` or an item names it, so
    runs without it record as before, and runners that split one folder's
    methods between them share its protocol by naming it in their items.

    Raises:
        ValueError: naming the item, for an unknown method, a value that is
            not a number or a scale that is not > 0.
    """
    named = {item.rpartition('=')[0] for item in items}
    scales = dict.fromkeys(
        list(METHOD_NAMES) +
        [m for m in COMPOSITION_NAMES if m in methods or m in named], 1.)
    for item in sorted(items, key=lambda item: '=' in item):
        method, _, value = item.rpartition('=')
        if method and method not in scales:
            raise ValueError(f'unknown method {method!r}; choose from '
                             f'{list(scales)}')
        try:
            scale = float(value)
        except ValueError:
            raise ValueError(f'{item!r} is not SCALE or METHOD=SCALE')
        if not scale > 0:
            raise ValueError(f'{item!r}: the scale must be > 0')
        for m in [method] if method else scales:
            scales[m] = scale
    return scales


def machine_info() -> Dict[str, str]:
    """Where a run ran: times are only comparable within one machine."""
    return dict(
        machine=f'{platform.node()} ({platform.machine()}, '
        f'{os.cpu_count()} CPUs)',
        device=torch.cuda.get_device_name(0)
        if torch.cuda.is_available() else 'cpu',
        torch=torch.__version__,
        threads=torch.get_num_threads())


def lr_schedule(cfg: Config) -> Dict[str, float]:
    """The warm-up + cosine shape of a config's ``param_scheduler``, as
    fractions of its training length (:class:`TrainBudgetHook`'s
    arguments)."""
    total = cfg.train_cfg.get('max_epochs') or cfg.train_cfg.get('max_iters')
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    shape = dict(warmup=0., start_factor=1., min_lr_ratio=0.)
    for sched in schedulers:
        if sched['type'] == 'LinearLR':
            shape['warmup'] = (sched.get('end', total) -
                               sched.get('begin', 0)) / total
            shape['start_factor'] = sched.get('start_factor', 1. / 3)
        elif sched['type'] == 'CosineAnnealingLR':
            if sched.get('eta_min'):
                raise ValueError('a budgeted run decays to `eta_min_ratio`; '
                                 'the config sets an absolute `eta_min`')
            shape['min_lr_ratio'] = sched.get('eta_min_ratio') or 0.
        else:
            raise ValueError(
                f'param_scheduler type {sched["type"]!r} is not supported '
                "by budgeted runs: use 'LinearLR' and 'CosineAnnealingLR'")
    return shape


@contextlib.contextmanager
def console_level(level: int = logging.ERROR):
    """Raise the level of the current mmengine logger's console handlers
    (e.g. while a model and its optimizer are built for counting)."""
    from mmengine.logging import MMLogger
    handlers = [
        h for h in MMLogger.get_current_instance().handlers
        if type(h) is logging.StreamHandler
    ]
    levels = [h.level for h in handlers]
    for handler in handlers:
        handler.setLevel(level)
    try:
        yield
    finally:
        for handler, old in zip(handlers, levels):
            handler.setLevel(old)


def quiet_runner(cfg: Config, console_level: int = logging.ERROR) -> Runner:
    """Build a Runner whose log lines below ``console_level`` (config,
    environment, per-parameter optimizer settings, deprecation notes) go to
    its log file only.

    mmengine's console handler writes to the ``sys.stdout`` of the moment
    the logger is made, inside ``Runner.__init__``; it is made while stdout
    points at ``os.devnull`` and then pointed back at the console with the
    higher level. The log file keeps every line.
    """
    with open(os.devnull, 'w') as null, contextlib.redirect_stdout(null):
        runner = Runner.from_cfg(cfg)
    for handler in runner.logger.handlers:
        if type(handler) is logging.StreamHandler:
            handler.stream = sys.stdout  # the devnull file is closed
            handler.setLevel(console_level)
    return runner


def budget_config(cfg: Config, unit: str, budget: float, flops_per_iter: float,
                  epoch_length: int) -> Config:
    """Turn a pre-training config into a budgeted, iteration-based run.

    The epoch loop becomes an ``IterBasedTrainLoop`` long enough for the
    budget (:class:`TrainBudgetHook` stops it), the parameter schedulers are
    dropped (the hook sets the learning rate from the spent budget), and
    checkpoints and validation are off (the run saves its final weights).
    """
    if unit == 'flops':
        max_iters = math.ceil(budget / flops_per_iter)
    elif unit == 'epochs':
        max_iters = math.ceil(budget * epoch_length)
    else:
        max_iters = 10**9  # the clock ends the run
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
    cfg.param_scheduler = None
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.test_dataloader = cfg.test_evaluator = cfg.test_cfg = None
    cfg.log_processor = dict(window_size=10, by_epoch=False)
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=-1, by_epoch=False, save_last=False)
    return cfg
