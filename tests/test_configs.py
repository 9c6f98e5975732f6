# Copyright (c) OpenMMLab. All rights reserved.
"""Every config parses; plugin configs build their model."""
import glob
import os.path as osp

import pytest
from helpers import REPO_ROOT
from mmengine.config import Config
from mmengine.registry import DefaultScope

CONFIGS = sorted(
    p for p in glob.glob(
        osp.join(REPO_ROOT, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p.split(osp.sep))


def test_configs_found():
    assert len(CONFIGS) >= 2


def registry_of(scope: str):
    """The MODELS registry of a config's default scope."""
    if scope == 'mmseg':
        import mmseg.models  # noqa: F401
        from mmseg.registry import MODELS
    elif scope == 'mmdet':
        import mmdet.models  # noqa: F401
        from mmdet.registry import MODELS
    else:
        from mmpretrain.registry import MODELS
    return MODELS


@pytest.mark.parametrize(
    'path', CONFIGS, ids=[osp.relpath(p, REPO_ROOT) for p in CONFIGS])
def test_config_parses_and_builds(path):
    cfg = Config.fromfile(path)
    # pre-training/classification configs run in mmpretrain's scope,
    # downstream ones (configs/benchmarks/mm*) in mmdet's or mmseg's
    scope = cfg.get('default_scope')
    downstream = osp.join('configs', 'benchmarks', 'mm') in path
    assert scope in (('mmdet', 'mmseg') if downstream else ('mmpretrain', ))
    imports = cfg.get('custom_imports', {}).get('imports', [])
    assert 'mim_plugins' in imports, 'plugin configs import mim_plugins'
    assert cfg.custom_imports.allow_failed_imports is False
    pretrain = not downstream and '/benchmarks/' not in path
    if pretrain:
        # every pre-training config draws reconstructions, guards losses
        # and resumes exactly
        hooks = [h['type'] for h in cfg.get('custom_hooks', [])]
        assert 'ReconstructionVisualizationHook' in hooks
        assert 'NonFiniteLossHook' in hooks
        assert 'RandomStateHook' in hooks
    if 'model' not in cfg:
        return
    MODELS = registry_of(scope)
    model_cfg = cfg.model.copy()
    # Do not load pre-trained weights while building.
    backbone = model_cfg.get('backbone', {})
    if isinstance(backbone.get('init_cfg'), dict) and \
            backbone['init_cfg'].get('type') == 'Pretrained':
        backbone['init_cfg'] = None
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(model_cfg)
    assert sum(p.numel() for p in model.parameters()) > 0
