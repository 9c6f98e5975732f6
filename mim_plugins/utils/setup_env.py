# Copyright (c) OpenMMLab. All rights reserved.
import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Register mmpretrain's and this plugin's modules.

    mim_plugins registers into mmpretrain's registries (see
    ``mim_plugins/__init__.py``), so the default scope is ``'mmpretrain'``.

    Args:
        init_default_scope (bool): Whether to set the default scope to
            ``'mmpretrain'``. Defaults to True.
    """
    from mmpretrain.utils import register_all_modules as _register_mmpretrain

    import mim_plugins.datasets  # noqa: F401,F403
    import mim_plugins.engine  # noqa: F401,F403
    import mim_plugins.models  # noqa: F401,F403
    _register_mmpretrain(init_default_scope=False)

    if not init_default_scope:
        return
    current = DefaultScope.get_current_instance()
    if current is None:
        DefaultScope.get_instance('mmpretrain', scope_name='mmpretrain')
    elif current.scope_name != 'mmpretrain':
        warnings.warn(f'The current default scope "{current.scope_name}" is '
                      'not "mmpretrain"; switching to a new "mmpretrain" '
                      'scope.')
        new_name = f'mmpretrain-{datetime.datetime.now()}'
        DefaultScope.get_instance(new_name, scope_name='mmpretrain')
