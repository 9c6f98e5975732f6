# Copyright (c) OpenMMLab. All rights reserved.
"""mim_plugins: efficient masked image modeling plugins for MMPretrain."""
try:
    import mmcv
    import mmengine
    import mmpretrain
except ImportError as err:
    # mmcv/mmengine are the `mim` extra (pip must not build mmcv over a
    # working install), so a bare `pip install` can leave them out.
    raise ImportError(
        f'{err}: mim_plugins needs the OpenMMLab stack installed first '
        '(mmengine>=0.10.6, mmcv>=2.0.0,<2.2.0, mmpretrain 1.2; see '
        'docs/install.md).') from err
from mmengine.utils import digit_version

from .version import __version__, version_info

mmcv_minimum_version = '2.0.0'
mmcv_maximum_version = '2.2.0'  # mmdet 3.3 / mmseg 1.2 refuse mmcv >= 2.2
mmengine_minimum_version = '0.10.6'  # 0.10.4/5 break on torch >= 2.5
mmengine_maximum_version = '1.0.0'
mmpretrain_minimum_version = '1.2.0'
mmpretrain_maximum_version = '1.3.0'


def _check(name: str, version: str, low: str, high: str) -> None:
    if not (digit_version(low) <= digit_version(version) <
            digit_version(high)):
        raise ImportError(
            f'{name}=={version} is used but incompatible with mim_plugins '
            f'{__version__}: please install {name}>={low},<{high} '
            '(`make setup` builds the pinned stack; docs/install.md '
            'installs it into an existing environment).')


_check('mmcv', mmcv.__version__, mmcv_minimum_version, mmcv_maximum_version)
_check('mmengine', mmengine.__version__, mmengine_minimum_version,
       mmengine_maximum_version)
_check('mmpretrain', mmpretrain.__version__, mmpretrain_minimum_version,
       mmpretrain_maximum_version)

# Registration: the plugin registers its modules directly into mmpretrain's
# registries (MODELS, OPTIM_WRAPPERS, HOOKS, ...) instead of child registries
# with a scope of its own.  mmpretrain's internals build unprefixed types
# (e.g. `PixelReconstructionLoss` inside `MAEPretrainHead`) in the current
# default scope, so plugin configs keep `default_scope='mmpretrain'`; the same
# config then trains with `mim train mmpretrain`, mmpretrain's tools and ours,
# and downstream mmdet/mmseg configs address plugin classes as
# `mmpretrain.<Name>`.  Plugin class names must not clash with mmpretrain's.
from . import datasets, engine, models  # noqa: E402,F401
# The one effect beyond registration: every checkpoint loads with
# weights_only=True (explained in that module).
from .utils import safe_checkpoint_loading  # noqa: E402,F401
from .utils import register_all_modules  # noqa: E402

__all__ = ['__version__', 'version_info', 'register_all_modules']
