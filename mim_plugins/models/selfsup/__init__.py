# Copyright (c) OpenMMLab. All rights reserved.
from .bim import BIM
from .localmim import LocalMIM
from .mixmim_plus import MixMIMPlus
from .prmim import PRMIM

__all__ = ['PRMIM', 'BIM', 'LocalMIM', 'MixMIMPlus']
