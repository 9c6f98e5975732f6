# Copyright (c) OpenMMLab. All rights reserved.
from .checks import check_divisible, check_img_size, check_range
from .decoder import (DecoderHead, EncoderGrid, ReconstructionDecoder,
                      check_decoder, decoder_loss)
from .furthest_sampling import (furthest_sampling, grid_sq_distances,
                                min_sq_distance_to_set, random_sampling)
from .hog_target import HOGTarget

__all__ = [
    'furthest_sampling', 'grid_sq_distances', 'min_sq_distance_to_set',
    'random_sampling', 'HOGTarget', 'check_range', 'check_divisible',
    'check_img_size', 'EncoderGrid', 'ReconstructionDecoder', 'DecoderHead',
    'decoder_loss', 'check_decoder'
]
