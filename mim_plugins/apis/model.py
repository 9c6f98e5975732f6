# Copyright (c) OpenMMLab. All rights reserved.
"""The plugin's models in mmpretrain's ``ModelHub``.

The plugin's ``model-index.yml`` (imports ``configs/<algo>/metafile.yml``)
is registered with :meth:`mmpretrain.apis.ModelHub.register_model_index`
once, on first use, so mmpretrain's own :func:`mmpretrain.get_model` and
:func:`mmpretrain.list_models` see the plugin's models too. The index lists
only names that mmpretrain does not define: the mmpretrain MAE / MixMIM
recipes that the plugin runs with its hooks are found under mmpretrain's
entries.
"""
import os.path as osp
from typing import List, Optional, Tuple, Union

from mmengine.config import Config
from mmpretrain.apis import ModelHub
from mmpretrain.apis import get_model as mmpretrain_get_model
from mmpretrain.apis import list_models as mmpretrain_list_models
from modelindex.load_model_index import load

_plugin_models: List[str] = []  # lower-case names, index order


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


def register_models() -> List[str]:
    """Register the plugin's models into mmpretrain's ``ModelHub`` (once).

    mmpretrain's own models are registered first, as
    :func:`mmpretrain.list_models` does: ``register_model_index`` refuses a
    name that is already there, so mmpretrain registering its index after
    the plugin's would fail on any shared name.

    Returns:
        List[str]: The (lower-case) names of the plugin's models.
    """
    if not _plugin_models:
        index_file, prefix = model_index_path()
        model_index = load(index_file)
        model_index.build_models_with_collections()
        names = [m.name.lower() for m in model_index.models]
        mmpretrain_list_models()  # registers mmpretrain's index
        # another import of this module (e.g. a reload) may have registered
        if not ModelHub.has(names[0]):
            ModelHub.register_model_index(index_file, config_prefix=prefix)
        _plugin_models[:] = names
    return list(_plugin_models)


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
    plugin = set(register_models())
    names = mmpretrain_list_models(pattern, exclude_patterns, task)
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
    return mmpretrain_get_model(
        model, pretrained=pretrained, device=device, **kwargs)
