# Copyright (c) OpenMMLab. All rights reserved.
from .prmim_neck import PRMIMPretrainDecoder

__all__ = ['PRMIMPretrainDecoder']
