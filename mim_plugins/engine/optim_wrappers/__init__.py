# Copyright (c) OpenMMLab. All rights reserved.
from .layer_decay_constructor import BackboneLayerDecayOptimWrapperConstructor

__all__ = ['BackboneLayerDecayOptimWrapperConstructor']
