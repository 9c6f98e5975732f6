# Copyright (c) OpenMMLab. All rights reserved.
import pytest
import torch
from mmengine.config import Config

from mim_plugins.utils import setup_cpu_distributed


def test_without_launcher_nothing_changes():
    cfg = Config(dict(launcher='none', model=dict()))
    assert setup_cpu_distributed(cfg).to_dict() == dict(
        launcher='none', model=dict())


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU-only behaviour')
def test_distributed_config_uses_gloo_and_cpu_ddp():
    # slurm: the Runner joins the process group itself (with gloo).
    cfg = Config(dict(launcher='slurm', find_unused_parameters=True))
    cfg = setup_cpu_distributed(cfg)
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg == dict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=True,
        device_ids=None)
    # a wrapper that is not a DDP subclass (FSDP) keeps its arguments
    cfg = Config(
        dict(
            launcher='slurm',
            model_wrapper_cfg=dict(type='MMFullyShardedDataParallel')))
    cfg = setup_cpu_distributed(cfg)
    assert 'device_ids' not in cfg.model_wrapper_cfg
