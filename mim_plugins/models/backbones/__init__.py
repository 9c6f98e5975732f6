# Copyright (c) OpenMMLab. All rights reserved.
from .bim_vit import BIMViT, check_block_boundaries

__all__ = ['BIMViT', 'check_block_boundaries']
