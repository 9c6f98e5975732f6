# Copyright (c) OpenMMLab. All rights reserved.
from typing import Optional

from mmengine.config import Config


def set_max_epochs(cfg: Config,
                   max_epochs: int,
                   epoch_length: Optional[int] = None) -> Config:
    """Shorten or lengthen an epoch-based run, keeping its schedule's shape.

    ``train_cfg.max_epochs`` is set and every epoch-based parameter scheduler
    (warm-up, cosine, ...) has its ``begin``/``end``/``T_max`` scaled by
    ``max_epochs / old_max_epochs``, so a 10-epoch recipe run for 3 epochs
    still warms up over the same fraction of training and decays to its end
    value.  Used by the demo and the benchmark tools (``--epochs``).

    A scaled boundary can fall inside an epoch; mmengine converts
    ``convert_to_iter_based`` schedulers by truncating ``epochs *
    epoch_length`` to whole iterations, so a warm-up of 0.1 epoch in an epoch
    of fewer than 10 iterations becomes ``begin=0, end=0`` and the Runner
    refuses it.  Given ``epoch_length``, such schedulers are converted here
    instead: boundaries are rounded to iterations and every scheduler keeps
    at least one iteration (consecutive schedulers stay contiguous).

    Args:
        cfg (Config): A config with ``train_cfg.max_epochs``; changed in
            place.
        max_epochs (int): The new number of epochs (>= 1).
        epoch_length (int, optional): Iterations per epoch of the run
            (``len(train_dataloader)``).  Defaults to None (boundaries stay
            in epochs).

    Returns:
        Config: The same config.
    """
    if max_epochs < 1:
        raise ValueError(f'max_epochs must be >= 1, got {max_epochs}')
    if epoch_length is not None and epoch_length < 1:
        raise ValueError(f'epoch_length must be >= 1, got {epoch_length}')
    old = cfg.train_cfg.get('max_epochs')
    if not old:
        raise ValueError('train_cfg.max_epochs is not set: only epoch-based '
                         'configs can be rescaled')
    scale = max_epochs / old
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    for sched in schedulers:
        if not sched.get('by_epoch', True):
            continue
        for key in ('begin', 'end', 'T_max'):
            if key in sched and sched[key] is not None:
                sched[key] = sched[key] * scale
    if epoch_length is not None:
        _to_iterations([
            s for s in schedulers if s.get('by_epoch', True)
            and s.get('convert_to_iter_based', False)
        ], epoch_length)
    cfg.train_cfg.max_epochs = max_epochs
    return cfg


def _to_iterations(schedulers: list, epoch_length: int) -> None:
    """Rewrite epoch boundaries as iterations, each span >= 1 iteration."""
    bounds = sorted(
        {float(s.get('begin', 0))
         for s in schedulers}
        | {float(s['end'])
           for s in schedulers if s.get('end') is not None})
    # one monotone map for every scheduler: equal epochs stay equal
    iters = {}
    last = None
    for value in bounds:
        it = int(round(value * epoch_length))
        if last is not None and it <= last:
            it = last + 1
        iters[value] = last = it
    for sched in schedulers:
        begin = iters[float(sched.get('begin', 0))]
        if sched.get('end') is None:
            sched.update(
                begin=begin, by_epoch=False, convert_to_iter_based=False)
            continue
        end = iters[float(sched['end'])]
        t_max = sched.get('T_max')
        if t_max is not None:
            if abs(t_max - (sched['end'] - sched.get('begin', 0))) < 1e-9:
                sched['T_max'] = end - begin
            else:
                sched['T_max'] = max(1, int(round(t_max * epoch_length)))
        sched.update(
            begin=begin, end=end, by_epoch=False, convert_to_iter_based=False)
