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


def make_iter_cfg():
    cfg = make_cfg()
    for sched in cfg.param_scheduler[:2]:
        sched.convert_to_iter_based = True
    return cfg


@pytest.mark.parametrize('epoch_length', [1, 3, 9])
def test_short_epochs_keep_a_warm_up(epoch_length):
    """One epoch of fewer than 10 iterations: the 0.1-epoch warm-up used to
    truncate to ``begin=0, end=0``, which the Runner refuses."""
    from mmengine.optim.scheduler import CosineAnnealingLR, LinearLR
    cfg = set_max_epochs(make_iter_cfg(), 1, epoch_length=epoch_length)
    warm, cos, const = cfg.param_scheduler
    assert warm.begin == 0 and warm.end >= 1
    assert cos.begin == warm.end  # contiguous
    assert cos.end == max(epoch_length, warm.end + 1)
    assert cos.T_max == cos.end - cos.begin
    assert not warm.by_epoch and not warm.convert_to_iter_based
    assert (const.begin, const.end) == (0, 100)  # iteration-based: kept
    # the schedulers build (mmengine checks end > begin)
    import torch
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1)
    LinearLR(opt, begin=warm.begin, end=warm.end, by_epoch=False)
    CosineAnnealingLR(
        opt, T_max=cos.T_max, begin=cos.begin, end=cos.end, by_epoch=False)


def test_long_epochs_round_to_iterations():
    cfg = set_max_epochs(make_iter_cfg(), 5, epoch_length=100)
    warm, cos, _ = cfg.param_scheduler
    assert (warm.begin, warm.end) == (0, 50)  # 0.5 epoch
    assert (cos.begin, cos.end, cos.T_max) == (50, 500, 450)


def test_epoch_length_none_keeps_epochs():
    cfg = set_max_epochs(make_iter_cfg(), 1)
    warm = cfg.param_scheduler[0]
    assert warm.by_epoch and (warm.begin, warm.end) == (0, 0.1)
    with pytest.raises(ValueError, match='epoch_length must be >= 1'):
        set_max_epochs(make_iter_cfg(), 1, epoch_length=0)
