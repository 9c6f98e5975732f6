# Copyright (c) OpenMMLab. All rights reserved.
"""One ``data_root`` key that moves every dataset of a config.

mmengine resolves a config's variables when the file is read: a dataset
written as ``data_prefix=data_root`` holds a copy of the string, so
``--cfg-options data_root=DIR`` alone changes the top-level key and nothing
else.  The Fashion-MNIST configs therefore record the path they were written
with (``default_data_root``, next to ``data_root`` in
``configs/_base_/datasets/fashion-mnist_root.py``), and :func:`apply_data_root`
points every ``data_prefix`` that still holds that path at ``data_root``.
The project's ``tools/train.py`` and ``tools/test.py`` (also behind ``mim
train/test mim_plugins`` and ``dist_train.sh``) call it after
``--cfg-options``; a ``data_prefix`` set explicitly to another path is left
alone.  Other tools (mmpretrain's own ``train.py``) read the environment
variable ``FMNIST_ROOT`` that the same base file substitutes when the config
is read.
"""
from mmengine.config import Config


def _replace_prefix(node, old: str, new: str) -> None:
    if isinstance(node, dict):
        if node.get('data_prefix') == old:
            node['data_prefix'] = new
        for value in node.values():
            _replace_prefix(value, old, new)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _replace_prefix(value, old, new)


def apply_data_root(cfg: Config) -> Config:
    """Point the datasets that read ``default_data_root`` at ``data_root``.

    Args:
        cfg (Config): A config; changed in place.  Configs without both
            keys are returned unchanged.

    Returns:
        Config: The same config, with ``default_data_root`` set to the
        ``data_root`` now in use (so a second call changes nothing).
    """
    root = cfg.get('data_root')
    default = cfg.get('default_data_root')
    if not isinstance(root, str) or not isinstance(default, str):
        return cfg
    if root == default:
        return cfg
    for key, value in cfg.items():
        if key not in ('data_root', 'default_data_root'):
            _replace_prefix(value, default, root)
    cfg.default_data_root = root
    return cfg
