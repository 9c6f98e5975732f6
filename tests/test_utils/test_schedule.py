# Copyright (c) OpenMMLab. All rights reserved.
import pytest
from mmengine.config import Config

from mim_plugins.utils import set_max_epochs


def make_cfg():
    return Config(
        dict(
            train_cfg=dict(max_epochs=10),
            param_scheduler=[
                dict(type='LinearLR', by_epoch=True, begin=0, end=1),
                dict(
                    type='CosineAnnealingLR',
                    by_epoch=True,
                    begin=1,
                    end=10,
                    T_max=9),
                dict(type='ConstantLR', by_epoch=False, begin=0, end=100)
            ]))


def test_set_max_epochs_scales_epoch_schedulers():
    cfg = set_max_epochs(make_cfg(), 5)
    assert cfg.train_cfg.max_epochs == 5
    warm, cos, const = cfg.param_scheduler
    assert (warm.begin, warm.end) == (0, 0.5)
    assert (cos.begin, cos.end, cos.T_max) == (0.5, 5, 4.5)
    assert (const.begin, const.end) == (0, 100)  # iteration-based: kept


def test_set_max_epochs_errors():
    with pytest.raises(ValueError, match='max_epochs must be >= 1'):
        set_max_epochs(make_cfg(), 0)
    with pytest.raises(ValueError, match='train_cfg.max_epochs'):
        set_max_epochs(Config(dict(train_cfg=dict(max_iters=5))), 2)
