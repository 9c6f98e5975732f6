# Copyright (c) OpenMMLab. All rights reserved.
import os
import os.path as osp
import subprocess
import sys
import textwrap

import pytest
from mmpretrain.registry import OPTIM_WRAPPERS

import mim_plugins
from mim_plugins import version


def test_version():
    assert mim_plugins.__version__ == version.__version__
    assert version.parse_version_info('1.2.3') == (1, 2, 3)
    assert version.parse_version_info('0.1.0rc2') == (0, 1, 0, 'rc2')


def test_incompatible_versions_are_reported():
    with pytest.raises(ImportError, match=r'mmcv>=2\.0\.0,<2\.2\.0'):
        mim_plugins._check('mmcv', '2.2.0', mim_plugins.mmcv_minimum_version,
                           mim_plugins.mmcv_maximum_version)
    mim_plugins._check('mmcv', '2.1.0', mim_plugins.mmcv_minimum_version,
                       mim_plugins.mmcv_maximum_version)


def test_registration_into_mmpretrain():
    from mim_plugins.engine import CPUAmpOptimWrapper

    # the plugin shares mmpretrain's registries (option A)
    assert OPTIM_WRAPPERS.scope == 'mmpretrain'
    assert OPTIM_WRAPPERS.get('CPUAmpOptimWrapper') is CPUAmpOptimWrapper


def test_import_leaves_mmengine_and_mmpretrain_unchanged():
    """Importing the plugin registers modules and loads checkpoints safely;
    it replaces nothing of the Runner, AmpOptimWrapper or mmengine's
    download path."""
    script = textwrap.dedent("""
        import mmengine.runner.checkpoint as ckpt
        from mmengine.registry import OPTIM_WRAPPERS as ENGINE_WRAPPERS
        from mmengine.runner import Runner
        from mmpretrain.registry import OPTIM_WRAPPERS

        def snapshot():
            return dict(
                **{name: vars(Runner)[name] for name in (
                    'load_checkpoint', 'build_dataloader',
                    '_init_model_weights')},
                amp=OPTIM_WRAPPERS.get('AmpOptimWrapper'),
                engine_amp=ENGINE_WRAPPERS.get('AmpOptimWrapper'),
                load_from_http=ckpt.load_from_http,
                schemes=dict(ckpt.CheckpointLoader._schemes))

        before = snapshot()
        import mim_plugins
        after = snapshot()
        changed = sorted(k for k in before['schemes']
                         if before['schemes'][k] is not after['schemes'][k])
        print(changed)
        for key in before:
            if key != 'schemes':
                assert after[key] is before[key], key
        assert before['amp'].__module__.startswith('mmengine.optim')
        print('unchanged')
    """)
    repo_root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    proc = subprocess.run([sys.executable, '-c', script],
                          env=dict(os.environ, PYTHONPATH=repo_root),
                          capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    changed, unchanged = proc.stdout.strip().splitlines()[-2:]
    assert unchanged == 'unchanged'
    # only the checkpoint schemes that would unpickle fully point elsewhere
    assert changed == str([
        '', 'http://', 'https://', 'mmcls://', 'modelzoo://', 'open-mmlab://',
        'openmmlab://', 'torchvision://'
    ])


def test_register_all_modules_sets_scope():
    from mmengine.registry import DefaultScope

    from mim_plugins.utils import register_all_modules
    with DefaultScope.overwrite_default_scope('mmdet'):
        with pytest.warns(UserWarning, match='mmpretrain'):
            register_all_modules(init_default_scope=True)
        assert DefaultScope.get_current_instance().scope_name == 'mmpretrain'


def test_missing_stack_says_what_to_install():
    """mmcv is not an install requirement (pip would build its sdist), so
    its absence gets a message naming the stack."""
    import subprocess
    import sys

    from helpers import REPO_ROOT
    proc = subprocess.run([
        sys.executable, '-c',
        "import sys; sys.modules['mmcv'] = None; import mim_plugins"
    ],
                          cwd=REPO_ROOT,
                          capture_output=True,
                          text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert 'mim_plugins needs the OpenMMLab stack installed first' in \
        proc.stderr
    assert 'docs/install.md' in proc.stderr
