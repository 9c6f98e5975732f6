# Copyright (c) OpenMMLab. All rights reserved.
"""Distributed training on CPU processes (used by the project's tools)."""
import os

import torch
from mmengine.config import Config, ConfigDict
from mmpretrain.registry import MODEL_WRAPPERS


def setup_cpu_distributed(cfg: Config) -> Config:
    """Make a distributed config runnable on CPU processes.

    When CUDA is absent, mmengine's defaults cannot work: ``init_dist`` calls
    ``torch.cuda.set_device`` whatever the backend, and DDP is built with
    ``device_ids=[LOCAL_RANK]``, which CPU modules reject.  So, for the
    ``pytorch`` launcher (``torchrun``/``tools/dist_train.sh``), this joins
    the process group with ``gloo`` here (the Runner then skips its own
    ``init_dist``) and builds DDP with ``device_ids=None``.

    Args:
        cfg (Config): The training config, modified in place.

    Returns:
        Config: The same config.
    """
    launcher = cfg.get('launcher', 'none')
    if torch.cuda.is_available() or launcher == 'none':
        return cfg
    env_cfg = cfg.setdefault('env_cfg', ConfigDict())
    dist_cfg = env_cfg.setdefault('dist_cfg', ConfigDict())
    dist_cfg['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or ConfigDict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper_type = MODEL_WRAPPERS.get(
        wrapper.get('type', 'MMDistributedDataParallel'))
    if isinstance(wrapper_type, type) and issubclass(
            wrapper_type, torch.nn.parallel.DistributedDataParallel):
        wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper

    import torch.distributed as torch_dist
    if launcher == 'pytorch' and not torch_dist.is_initialized():
        kwargs = {k: v for k, v in dist_cfg.items() if k != 'backend'}
        torch_dist.init_process_group(
            backend='gloo',
            rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']),
            **kwargs)
    return cfg
