# Copyright (c) OpenMMLab. All rights reserved.
from .bim_vit import BIMViT, check_block_boundaries
from .localmim_swin import LocalMIMSwin
from .localmim_vit import LocalMIMViT, check_tap_indices
from .mixmim_pyramid import MixMIMPyramidTransformer
from .mixmim_vit import MixMIMViT, check_pairing_batch

__all__ = [
    'BIMViT', 'check_block_boundaries', 'LocalMIMViT', 'check_tap_indices',
    'LocalMIMSwin', 'MixMIMPyramidTransformer', 'MixMIMViT',
    'check_pairing_batch'
]
