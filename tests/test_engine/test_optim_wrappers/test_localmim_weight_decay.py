# Copyright (c) OpenMMLab. All rights reserved.
"""The LocalMIM configs decay the parameters the official code decays.

The official optimizers come from timm's ``add_weight_decay``: no decay on
1-D parameters and biases, every other trainable parameter (the class and
mask tokens included) decayed. The official Swin code also exempts the
parameters whose names hold ``position_bias`` or ``token``.
"""
import copy
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

import mim_plugins  # noqa: F401
from mim_plugins.models.backbones import LocalMIMSwin

REPO_ROOT = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
CONFIGS = sorted(
    glob.glob(osp.join(REPO_ROOT, 'configs', 'localmim', 'localmim_*.py')))


def official_decay(name: str, param: torch.Tensor, weight_decay: float,
                   swin: bool) -> float:
    """Weight decay of a parameter in the official LocalMIM optimizer."""
    exempt = param.ndim == 1 or name.endswith('.bias')
    if swin:
        exempt = exempt or 'position_bias' in name or 'token' in name
    return 0. if exempt else weight_decay


def small_model_cfg(cfg: Config) -> dict:
    """The config's model with fewer blocks and narrower ViTs: the same kinds
    of parameters, built in seconds."""
    model = copy.deepcopy(cfg.model)
    backbone = model.backbone
    if backbone.type == 'LocalMIMSwin':
        arch = dict(LocalMIMSwin.arch_zoo[backbone.arch])
        arch['depths'] = [2, 2, 2, 2]
        backbone.arch = arch
    else:
        backbone.arch = dict(
            embed_dims=32,
            num_layers=max(backbone.out_indices) + 1,
            num_heads=2,
            feedforward_channels=64)
        model.neck.embed_dim = 32
    return model


@pytest.mark.parametrize(
    'path', CONFIGS, ids=[osp.basename(p) for p in CONFIGS])
def test_weight_decay_as_official(path):
    cfg = Config.fromfile(path)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(small_model_cfg(cfg))
        optim_cfg = copy.deepcopy(cfg.optim_wrapper)
        optim_cfg.type = 'OptimWrapper'  # AmpOptimWrapper needs CUDA
        optim_cfg.pop('loss_scale', None)
        optim_wrapper = build_optim_wrapper(model, optim_cfg)
    weight_decay = cfg.optim_wrapper.optimizer.weight_decay
    decay = {
        id(p): group['weight_decay']
        for group in optim_wrapper.optimizer.param_groups
        for p in group['params']
    }
    swin = cfg.model.backbone.type == 'LocalMIMSwin'
    checked = set()
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue  # never updated (fixed sin-cos positions)
        expected = official_decay(name, param, weight_decay, swin)
        assert decay[id(param)] == expected, name
        checked.add(name.rsplit('.', 1)[-1])
    # tokens are among the checked parameters
    assert 'mask_token' in checked
    assert swin or 'cls_token' in checked
