# Copyright (c) OpenMMLab. All rights reserved.
"""Model-zoo access: the plugin's models in mmpretrain's ``ModelHub``.

The plugin's ``model-index.yml`` (imports ``configs/<algo>/metafile.yml``)
is registered into :class:`mmpretrain.apis.ModelHub` once, on first use, so
mmpretrain's own :func:`mmpretrain.get_model` / :func:`mmpretrain.
list_models` see the plugin's models too.

Example:
    >>> from mim_plugins.apis import get_model, list_models
    >>> list_models('bim_*')
    ['bim_vit-base-p16_8xb512-amp-coslr-400e_in1k', ...]
    >>> model = get_model('bim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist')
"""
import os.path as osp
from typing import List, Optional, Tuple, Union

from mmengine.config import Config
from mmengine.logging import print_log
from mmpretrain.apis import ModelHub
from mmpretrain.apis import get_model as _mmpretrain_get_model
from mmpretrain.apis import list_models as _mmpretrain_list_models

__all__ = [
    'model_index_path', 'register_models', 'plugin_model_names', 'get_model',
    'list_models'
]

_PLUGIN_MODELS: List[str] = []  # lower-case names in the plugin's index
_registered = False


def model_index_path() -> Tuple[str, str]:
    """The plugin's ``model-index.yml`` and the root of its config paths.

    Installed packages carry both in ``mim_plugins/.mim`` (copies, or
    symlinks for editable installs); a source checkout has them at the
    repository root.

    Returns:
        tuple: ``(model_index_file, config_prefix)``.
    """
    package_dir = osp.dirname(osp.dirname(osp.abspath(__file__)))
    for root in (osp.join(package_dir, '.mim'), osp.dirname(package_dir)):
        index = osp.join(root, 'model-index.yml')
        if osp.isfile(index):
            return index, root
    raise FileNotFoundError('model-index.yml of mim_plugins not found under '
                            f'{package_dir}/.mim or next to the package')


def register_models(force: bool = False) -> List[str]:
    """Register the plugin's models into mmpretrain's ``ModelHub``.

    Runs once (again with ``force=True``). mmpretrain's own models are
    registered first; a plugin entry whose name mmpretrain already defines
    (the MAE and MixMIM recipes that mmpretrain publishes, same checkpoint)
    keeps mmpretrain's entry.

    Args:
        force (bool): Register again even if done before.
            Defaults to False.

    Returns:
        List[str]: The (lower-case) names of the plugin's models.
    """
    global _registered
    if _registered and not force:
        return list(_PLUGIN_MODELS)
    from modelindex.load_model_index import load

    # Not ModelHub.register_model_index: it raises on the first name that
    # mmpretrain already defines (our index lists five of its MAE / MixMIM
    # recipes, same checkpoints) after registering the entries before it.
    ModelHub._register_mmpretrain_models()
    index_file, prefix = model_index_path()
    model_index = load(index_file)
    model_index.build_models_with_collections()
    names = []
    for metainfo in model_index.models:
        name = metainfo.name.lower()
        names.append(name)
        known = ModelHub._models_dict.get(name)
        if known is not None and not _same_index(known, prefix):
            print_log(
                f'{name}: mmpretrain defines this model; its entry is kept',
                logger='current',
                level=10)  # DEBUG
            continue
        metainfo.config = ModelHub._expand_config_path(metainfo, prefix)
        ModelHub._models_dict[name] = metainfo
    _PLUGIN_MODELS[:] = names
    _registered = True
    return list(names)


def _same_index(metainfo, prefix: str) -> bool:
    """Whether a registered entry came from the plugin's own index."""
    config = metainfo.config
    if isinstance(config, Config):
        config = config.filename
    return isinstance(
        config,
        str) and osp.abspath(config).startswith(osp.abspath(prefix) + osp.sep)


def plugin_model_names() -> List[str]:
    """The names of the plugin's models, in index order."""
    return register_models()


def list_models(pattern: Optional[str] = None,
                exclude_patterns: Optional[List[str]] = None,
                task: Optional[str] = None,
                plugin_only: bool = True) -> List[str]:
    """List model names, like :func:`mmpretrain.list_models`.

    Args:
        pattern (str, optional): Wildcard pattern (any suffix matches).
            Defaults to None.
        exclude_patterns (List[str], optional): Wildcard patterns of names
            to leave out. Defaults to None.
        task (str, optional): Evaluation task of the model, e.g.
            ``'Image Classification'``; ``'null'`` lists models without
            results (pre-training). Defaults to None.
        plugin_only (bool): Only the plugin's models (else mmpretrain's
            too). Defaults to True.

    Returns:
        List[str]: Sorted model names.
    """
    plugin = register_models()
    names = _mmpretrain_list_models(pattern, exclude_patterns, task)
    if plugin_only:
        names = [n for n in names if n in plugin]
    return names


def get_model(model: Union[str, Config],
              pretrained: Union[str, bool] = False,
              device=None,
              **kwargs):
    """Build a model by name, like :func:`mmpretrain.get_model`.

    Args:
        model (str | Config): A model name (see :func:`list_models`), a
            config file or a config.
        pretrained (bool | str): ``True`` loads the published weights of a
            named model (plugin-trained models have none yet), a string
            loads that checkpoint. Defaults to False.
        device (str | torch.device, optional): Device of the model.
            Defaults to None.
        **kwargs: Other arguments of :func:`mmpretrain.get_model` and
            overrides of the model config.

    Returns:
        mmengine.model.BaseModel: The model, in eval mode.
    """
    register_models()
    return _mmpretrain_get_model(
        model, pretrained=pretrained, device=device, **kwargs)
