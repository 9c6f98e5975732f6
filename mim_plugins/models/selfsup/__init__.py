# Copyright (c) OpenMMLab. All rights reserved.
from .prmim import PRMIM

__all__ = ['PRMIM']
