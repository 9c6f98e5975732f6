# Copyright (c) OpenMMLab. All rights reserved.
from .feature_eval_hook import FeatureEvalHook
from .nonfinite_loss_hook import NonFiniteLossHook
from .reconstruction_hook import ReconstructionVisualizationHook

__all__ = [
    'FeatureEvalHook', 'NonFiniteLossHook', 'ReconstructionVisualizationHook'
]
