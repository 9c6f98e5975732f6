# Copyright (c) OpenMMLab. All rights reserved.
"""The ViT-Mini/4 Fashion-MNIST family keeps the ViT-B/16 training-FLOPs
ratio of every method to MAE (within 0.10), so that equal-budget results on
the small family speak for the ViT-B/16 recipes."""
import logging
import os.path as osp

import pytest
from helpers import REPO_ROOT

# method: (ViT-B/16 config, ViT-Mini/4 config); the first is the baseline
FAMILIES = {
    'mae': ('mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py',
            'mae/mae_vit-mini-p4_1xb256-coslr-10e_fashion-mnist.py'),
    'bim': ('bim/bim_vit-base-p16_8xb512-amp-coslr-400e_in1k.py',
            'bim/bim_vit-mini-p4_1xb256-coslr-10e_fashion-mnist.py'),
    'prmim': ('prmim/prmim_vit-base-p16_8xb512-amp-coslr-400e_in1k.py',
              'prmim/prmim_vit-mini-p4_1xb256-coslr-10e_fashion-mnist.py'),
    'localmim':
    ('localmim/localmim_vit-base-p16_8xb256-amp-coslr-400e_in1k.py',
     'localmim/localmim_vit-mini-p4_1xb256-coslr-10e_fashion-mnist.py'),
    'mixmim': ('mixmim/mixmim_vit-base-p16_16xb128-coslr-300e_in1k.py',
               'mixmim/mixmim_vit-mini-p4_1xb256-coslr-10e_fashion-mnist.py'),
    'bim-prmim':
    ('prmim/bim-prmim_vit-base-p16_8xb512-amp-coslr-400e_in1k.py',
     'prmim/bim-prmim_vit-mini-p4_1xb256-coslr-10e_fashion-mnist.py'),
}
TOLERANCE = 0.10


@pytest.fixture(scope='module')
def flops():
    """Training FLOPs per image of every config of both families."""
    import mim_plugins  # noqa: F401
    from mmengine.logging import MMLogger

    from mim_plugins.benchmarks import train_flops_per_image
    logger = MMLogger.get_instance('mmengine')
    level = logger.level
    logger.setLevel(logging.ERROR)  # per-parameter init/decay warnings
    try:
        return {
            name: [
                train_flops_per_image(osp.join(REPO_ROOT, 'configs', path))
                for path in paths
            ]
            for name, paths in FAMILIES.items()
        }
    finally:
        logger.setLevel(level)


@pytest.mark.parametrize('method', [m for m in FAMILIES if m != 'mae'])
def test_small_family_keeps_vit_b_flops_ratio(flops, method):
    vit_b, mini = (flops[method][i] / flops['mae'][i] for i in (0, 1))
    assert abs(mini - vit_b) <= TOLERANCE, (
        f'{method}: FLOPs ratio to MAE {mini:.3f} on ViT-Mini/4 vs '
        f'{vit_b:.3f} on ViT-B/16 (tolerance {TOLERANCE})')


def test_families_differ_in_cost(flops):
    # the ratios compare two different scales, not a config with itself
    vit_b, mini = flops['mae']
    assert vit_b > 50 * mini > 0
