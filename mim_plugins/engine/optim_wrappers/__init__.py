# Copyright (c) OpenMMLab. All rights reserved.
from .bim_optim_wrapper import BIMOptimWrapper, BIMOptimWrapperConstructor
from .cpu_amp_optim_wrapper import CPUAmpOptimWrapper
from .layer_decay_constructor import BackboneLayerDecayOptimWrapperConstructor

__all__ = [
    'BIMOptimWrapper', 'BIMOptimWrapperConstructor', 'CPUAmpOptimWrapper',
    'BackboneLayerDecayOptimWrapperConstructor'
]
