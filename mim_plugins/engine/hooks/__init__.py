# Copyright (c) OpenMMLab. All rights reserved.
from .feature_eval_hook import FeatureEvalHook

__all__ = ['FeatureEvalHook']
