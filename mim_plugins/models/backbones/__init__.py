# Copyright (c) OpenMMLab. All rights reserved.
from .bim_vit import BIMViT, check_block_boundaries
from .localmim_swin import LocalMIMSwin
from .localmim_vit import LocalMIMViT, check_tap_indices

__all__ = [
    'BIMViT', 'check_block_boundaries', 'LocalMIMViT', 'check_tap_indices',
    'LocalMIMSwin'
]
