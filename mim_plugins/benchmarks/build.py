# Copyright (c) OpenMMLab. All rights reserved.
"""Build a config's model, optimizer wrapper and a batch of random images,
as the measurements of this package use them."""
import copy
from typing import Optional, Union

import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope


def load_config(path: Union[str, Config], device: str = 'cpu') -> Config:
    """Load a config (or copy a loaded one); AMP becomes fp32 on CPU (no
    bf16 kernels measured)."""
    cfg = Config.fromfile(path) if isinstance(path, str) else \
        copy.deepcopy(path)
    wrapper = cfg.optim_wrapper
    if device == 'cpu' and wrapper.get('type') == 'AmpOptimWrapper':
        # fp32 on CPU: the comparison must not depend on bf16 kernels
        wrapper.type = 'OptimWrapper'
        wrapper.pop('loss_scale', None)
        wrapper.pop('dtype', None)
    return cfg


def build_model_and_optim(cfg: Config, device: str = 'cpu'):
    """Build the model (initialised, train mode) and its optim wrapper."""
    from mmpretrain.registry import MODELS
    model_cfg = cfg.model.copy()
    model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(model_cfg)
        model.init_weights()
        model = model.to(device).train()
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    return model, optim_wrapper


def image_shape(cfg: Config, img_size: Optional[int] = None) -> tuple:
    """(C, H, W) of the config's inputs."""
    channels = len(cfg.get('data_preprocessor', {}).get('mean', [0, 0, 0]))
    size = img_size or cfg.model.get('backbone', {}).get('img_size', 224)
    return channels, size, size


def make_batch(batch_size: int, shape: tuple, seed: int = 0) -> dict:
    """Random uint8 images and empty data samples, as a dataloader gives."""
    from mmpretrain.structures import DataSample
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(
        0, 256, (batch_size, *shape), generator=gen, dtype=torch.uint8)
    return dict(
        inputs=images, data_samples=[DataSample() for _ in range(batch_size)])


def per_device_batch(cfg: Config) -> int:
    """The per-device batch size of the config's training dataloader."""
    return int(cfg.get('train_dataloader', {}).get('batch_size', 8))
