# Copyright (c) OpenMMLab. All rights reserved.
from .bim_optim_wrapper import BIMOptimWrapper, BIMOptimWrapperConstructor
from .layer_decay_constructor import BackboneLayerDecayOptimWrapperConstructor

__all__ = [
    'BIMOptimWrapper', 'BIMOptimWrapperConstructor',
    'BackboneLayerDecayOptimWrapperConstructor'
]
