# Copyright (c) OpenMMLab. All rights reserved.
from .prmim_head import PRMIMPretrainHead

__all__ = ['PRMIMPretrainHead']
