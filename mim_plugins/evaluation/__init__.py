# Copyright (c) OpenMMLab. All rights reserved.
from .feature_eval import (default_feature, evaluate_features,
                           extract_features, knn_classify, linear_probe)

__all__ = [
    'default_feature', 'evaluate_features', 'extract_features', 'knn_classify',
    'linear_probe'
]
