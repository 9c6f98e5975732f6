# Copyright (c) OpenMMLab. All rights reserved.
from .transforms import CorruptImageError, LoadImageFromFileChecked

__all__ = ['CorruptImageError', 'LoadImageFromFileChecked']
