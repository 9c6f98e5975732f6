# Copyright (c) OpenMMLab. All rights reserved.
from .localmim_head import LocalMIMHead
from .mixmim_plus_head import MixMIMPlusPretrainHead, PRMIMMixMIMPretrainHead
from .prmim_head import PRMIMPretrainHead

__all__ = [
    'PRMIMPretrainHead', 'LocalMIMHead', 'MixMIMPlusPretrainHead',
    'PRMIMMixMIMPretrainHead'
]
