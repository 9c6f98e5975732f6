# Copyright (c) OpenMMLab. All rights reserved.
from mmengine.config import Config


def set_max_epochs(cfg: Config, max_epochs: int) -> Config:
    """Shorten or lengthen an epoch-based run, keeping its schedule's shape.

    ``train_cfg.max_epochs`` is set and every epoch-based parameter scheduler
    (warm-up, cosine, ...) has its ``begin``/``end``/``T_max`` scaled by
    ``max_epochs / old_max_epochs``, so a 10-epoch recipe run for 3 epochs
    still warms up over the same fraction of training and decays to its end
    value.  Used by the demo and the benchmark tools (``--epochs``).

    Args:
        cfg (Config): A config with ``train_cfg.max_epochs``; changed in
            place.
        max_epochs (int): The new number of epochs (>= 1).

    Returns:
        Config: The same config.
    """
    if max_epochs < 1:
        raise ValueError(f'max_epochs must be >= 1, got {max_epochs}')
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
    cfg.train_cfg.max_epochs = max_epochs
    return cfg
