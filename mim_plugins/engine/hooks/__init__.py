# Copyright (c) OpenMMLab. All rights reserved.
from .feature_eval_hook import FeatureEvalHook
from .nonfinite_loss_hook import NonFiniteLossHook
from .random_state_hook import RandomStateHook
from .reconstruction_hook import ReconstructionVisualizationHook
from .train_budget_hook import TrainBudgetHook

__all__ = [
    'FeatureEvalHook', 'NonFiniteLossHook', 'RandomStateHook',
    'ReconstructionVisualizationHook', 'TrainBudgetHook'
]
