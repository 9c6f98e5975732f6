# Copyright (c) OpenMMLab. All rights reserved.
from .checks import check_divisible, check_img_size, check_range
from .furthest_sampling import (furthest_sampling, grid_sq_distances,
                                min_sq_distance_to_set, random_sampling)
from .hog_target import HOGTarget

__all__ = [
    'furthest_sampling', 'grid_sq_distances', 'min_sq_distance_to_set',
    'random_sampling', 'HOGTarget', 'check_range', 'check_divisible',
    'check_img_size'
]
