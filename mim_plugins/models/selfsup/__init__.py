# Copyright (c) OpenMMLab. All rights reserved.
from .bim import BIM, BIMBlockUnit
from .prmim import PRMIM

__all__ = ['PRMIM', 'BIM', 'BIMBlockUnit']
