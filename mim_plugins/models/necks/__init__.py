# Copyright (c) OpenMMLab. All rights reserved.
from .localmim_neck import (LocalMIMDecoder, LocalMIMNeck, LocalMIMSwinDecoder,
                            LocalMIMSwinNeck)
from .mixmim_plus_neck import MixMIMPlusPretrainDecoder
from .mixmim_prmim_neck import PRMIMMixMIMPretrainDecoder
from .prmim_neck import PRMIMPretrainDecoder

__all__ = [
    'PRMIMPretrainDecoder', 'LocalMIMDecoder', 'LocalMIMNeck',
    'LocalMIMSwinDecoder', 'LocalMIMSwinNeck', 'MixMIMPlusPretrainDecoder',
    'PRMIMMixMIMPretrainDecoder'
]
