# Copyright (c) OpenMMLab. All rights reserved.
from .loading import CorruptImageError, LoadImageFromFileChecked

__all__ = ['CorruptImageError', 'LoadImageFromFileChecked']
