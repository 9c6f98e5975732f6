# Copyright (c) OpenMMLab. All rights reserved.
from .bim_ddp import BIMDistributedDataParallel
from .furthest_sampling import (furthest_sampling, grid_sq_distances,
                                min_sq_distance_to_set, random_sampling)
from .hog_target import HOGTarget

__all__ = [
    'furthest_sampling', 'grid_sq_distances', 'min_sq_distance_to_set',
    'random_sampling', 'BIMDistributedDataParallel', 'HOGTarget'
]
