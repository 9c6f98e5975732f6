# Copyright (c) OpenMMLab. All rights reserved.
import functools
from typing import Callable, List, Optional

from mmengine.model import is_model_wrapper
from mmpretrain.engine.optimizers import \
    LearningRateDecayOptimWrapperConstructor
from mmpretrain.registry import OPTIM_WRAPPER_CONSTRUCTORS
from torch import nn

from mim_plugins.utils.checks import check_range


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class BackboneLayerDecayOptimWrapperConstructor(
        LearningRateDecayOptimWrapperConstructor):
    """Layer-wise lr decay for any model whose backbone knows layer depths.

    mmpretrain's :class:`LearningRateDecayOptimWrapperConstructor` asks the
    top-level model for ``get_layer_depth`` (classifiers delegate it to their
    backbone), and mmdet's/mmseg's constructors only accept backbones whose
    class name contains ConvNeXt/BEiT/MAE.  This constructor takes the depth
    from the model if it has ``get_layer_depth``, else from
    ``model.backbone.get_layer_depth`` with the ``'backbone.'`` prefix, so a
    detector or segmentor with a ViT (or any backbone implementing it) gets
    decayed learning rates; necks and heads keep the base lr.

    Use it from mmdet/mmseg configs (which run in their own scope) with the
    scope prefix, after ``custom_imports=dict(imports=['mim_plugins'])``::

        optim_wrapper = dict(
            constructor='mmpretrain.BackboneLayerDecayOptimWrapperConstructor',
            paramwise_cfg=dict(layer_decay_rate=0.65, ...))

    The ``paramwise_cfg`` keys are mmpretrain's (``layer_decay_rate``,
    ``norm_decay_mult``, ``flat_decay_mult``, ``bias_decay_mult``,
    ``custom_keys`` with ``decay_mult``).
    """

    def __init__(self,
                 optim_wrapper_cfg: dict,
                 paramwise_cfg: Optional[dict] = None) -> None:
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        # a rate > 1 would give the first layers the largest lr
        check_range(
            'paramwise_cfg.layer_decay_rate',
            self.paramwise_cfg.get('layer_decay_rate', 1.0),
            0,
            1,
            low_open=True)

    def add_params(self,
                   params: List[dict],
                   module: nn.Module,
                   prefix: str = '',
                   get_layer_depth: Optional[Callable] = None,
                   **kwargs) -> None:
        if get_layer_depth is None and prefix == '':
            get_layer_depth = self.find_layer_depth(module)
        super().add_params(
            params,
            module,
            prefix=prefix,
            get_layer_depth=get_layer_depth,
            **kwargs)

    @staticmethod
    def find_layer_depth(model: nn.Module) -> Callable:
        """The ``get_layer_depth`` function that covers ``model``."""
        if is_model_wrapper(model):
            model = model.module
        if hasattr(model, 'get_layer_depth'):
            return model.get_layer_depth
        backbone = getattr(model, 'backbone', None)
        if backbone is not None and hasattr(backbone, 'get_layer_depth'):
            return functools.partial(
                backbone.get_layer_depth, prefix='backbone.')
        raise NotImplementedError(
            'layer-wise lr decay needs `get_layer_depth` on the model or on '
            f'model.backbone; {type(model).__name__} with backbone '
            f'{type(backbone).__name__} has none')
