# Copyright (c) OpenMMLab. All rights reserved.
"""One ``data_root`` key that moves every dataset of a config.

mmengine resolves a config's variables when the file is read: a dataset
written as ``data_prefix=data_root`` holds a copy of the string, so
``--cfg-options data_root=DIR`` changes the top-level key and nothing else.
The Fashion-MNIST configs therefore record the path they were written with
(``default_data_root``, next to ``data_root`` in
``configs/_base_/datasets/fashion-mnist_root.py``), and :func:`apply_data_root`
points every ``data_prefix`` that still holds that path at ``data_root``.
It runs when a Runner is built from a config (:func:`patch_runner_from_cfg`,
applied when ``mim_plugins`` is imported, which every plugin config does
through ``custom_imports``), so ``mim train mmpretrain``, ``mim train
mim_plugins``, ``tools/train.py`` and ``tools/test.py`` all honour it; a
``data_prefix`` set explicitly to another path is left alone.
"""
import copy
import functools

from mmengine.config import Config
from mmengine.runner import Runner

_PATCHED = False


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


def patch_runner_from_cfg() -> None:
    """Make :meth:`Runner.from_cfg` apply :func:`apply_data_root` first
    (idempotent; the caller's config is not changed)."""
    global _PATCHED
    if _PATCHED:
        return
    original = Runner.from_cfg.__func__

    def from_cfg(cls, cfg):
        if cfg.get('data_root') != cfg.get('default_data_root'):
            cfg = apply_data_root(copy.deepcopy(cfg))
        return original(cls, cfg)

    functools.update_wrapper(from_cfg, original)
    Runner.from_cfg = classmethod(from_cfg)
    _PATCHED = True
