# Copyright (c) OpenMMLab. All rights reserved.
from .data_root import apply_data_root
from .transforms import CorruptImageError, LoadImageFromFileChecked

__all__ = ['CorruptImageError', 'LoadImageFromFileChecked', 'apply_data_root']
