# Copyright (c) OpenMMLab. All rights reserved.
"""Model-zoo access, as :mod:`mmpretrain.apis`.

Example:
    >>> from mim_plugins.apis import get_model, list_models
    >>> list_models('bim_*')
    ['bim_vit-base-p16_8xb512-amp-coslr-400e_in1k', ...]
    >>> model = get_model('bim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist')
"""
from .model import (get_model, list_models, model_index_path,
                    plugin_model_names, register_models)

__all__ = [
    'model_index_path', 'register_models', 'plugin_model_names', 'get_model',
    'list_models'
]
