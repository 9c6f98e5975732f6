# Copyright (c) OpenMMLab. All rights reserved.
from .bim import BIM, BIMBlockUnit
from .localmim import LocalMIM
from .prmim import PRMIM

__all__ = ['PRMIM', 'BIM', 'BIMBlockUnit', 'LocalMIM']
