# Copyright (c) OpenMMLab. All rights reserved.
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
    from mim_plugins.utils.compat import (CPUAmpOptimWrapper,
                                          build_amp_optim_wrapper)

    # the plugin shares mmpretrain's registries (option A)
    assert OPTIM_WRAPPERS.scope == 'mmpretrain'
    assert OPTIM_WRAPPERS.get('CPUAmpOptimWrapper') is CPUAmpOptimWrapper
    assert OPTIM_WRAPPERS.get('AmpOptimWrapper') is build_amp_optim_wrapper


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

    from conftest import REPO_ROOT
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
