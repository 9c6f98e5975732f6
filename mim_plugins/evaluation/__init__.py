# Copyright (c) OpenMMLab. All rights reserved.
from .feature_eval import (build_feature_eval_loaders, build_scoring_model,
                           default_feature, evaluate_features,
                           extract_features, knn_classify, linear_probe,
                           pool_tokens, save_score_table, score_model,
                           split_indices, top_direction_share)

__all__ = [
    'build_feature_eval_loaders', 'build_scoring_model', 'default_feature',
    'evaluate_features', 'extract_features', 'knn_classify', 'linear_probe',
    'pool_tokens', 'save_score_table', 'score_model', 'split_indices',
    'top_direction_share'
]
