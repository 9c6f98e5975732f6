# Copyright (c) OpenMMLab. All rights reserved.
from .bim_distributed import BIMBlockUnit, BIMDistributedDataParallel

__all__ = ['BIMBlockUnit', 'BIMDistributedDataParallel']
