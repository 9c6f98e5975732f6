# Copyright (c) OpenMMLab. All rights reserved.
from .feature_eval_hook import FeatureEvalHook
from .reconstruction_hook import ReconstructionVisualizationHook

__all__ = ['FeatureEvalHook', 'ReconstructionVisualizationHook']
