# Copyright (c) OpenMMLab. All rights reserved.
from .bim_distributed import BIMDistributedDataParallel

__all__ = ['BIMDistributedDataParallel']
