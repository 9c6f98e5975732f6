# Copyright (c) OpenMMLab. All rights reserved.
"""Measuring code of the tools (``tools/analysis_tools``,
``tools/benchmarks``, ``tools/run_demo.py``): FLOPs, memory and time of a
training step, the memory planner, and the budgeted runs of the equal-budget
benchmark with their scoring baselines and low-label fine-tune.

Nothing of the plugin imports this package: ``import mim_plugins`` and
building a config's model leave it unloaded.  The private torch and mmengine
APIs it needs are in :mod:`.private_apis`, one function each.
"""
from .amp import CudaAutocastPolicy, leaf_optim_wrappers, use_cpu_autocast
from .attention import (attention_summary, eager_attention_bytes,
                        eager_attention_extra)
from .baselines import BASELINES, score_baselines
from .budget import FINETUNE_AT, BudgetEvaluator, train_for_budget
from .budget_runs import (METHOD_NAMES, budget_config, console_level,
                          lr_schedule, machine_info, quiet_runner)
from .build import (build_model_and_optim, image_shape, load_config,
                    make_batch, per_device_batch)
from .calibration import (CALIBRATION_FORMAT, CalibrationError,
                          calibration_run, load_calibration)
from .cost import measure_config, measure_step, ratio
from .finetune import low_label_finetune
from .flops import flop_counter_mode, train_flops_per_image, train_step_flops
from .memory import (LiveTensorMemory, SavedActivationMeter,
                     extrapolate_memory, extrapolate_timeline,
                     optimizer_tensors, resident_bytes)
from .memory_lines import (ATTENTION_PATHS, MemoryLines, ddp_bucket_bytes,
                           measure_memory_lines, measure_timelines)
from .planner import (GIB, MemoryBudgetError, accumulation_plan, margin_text,
                      min_budget_gib, plan_memory, usable_bytes)
from .private_apis import accumulating, attention_op
from .trace import (StepTrace, cuda_foreach_temporary_bytes, memory_timeline,
                    memory_trace, planned_timeline)

__all__ = [
    'BASELINES', 'FINETUNE_AT', 'METHOD_NAMES', 'BudgetEvaluator',
    'budget_config', 'console_level', 'low_label_finetune', 'lr_schedule',
    'machine_info', 'quiet_runner', 'score_baselines', 'train_for_budget',
    'ATTENTION_PATHS', 'CALIBRATION_FORMAT', 'GIB', 'CalibrationError',
    'CudaAutocastPolicy', 'LiveTensorMemory', 'MemoryBudgetError',
    'MemoryLines', 'SavedActivationMeter', 'StepTrace', 'accumulating',
    'accumulation_plan', 'attention_op', 'attention_summary',
    'build_model_and_optim', 'calibration_run', 'cuda_foreach_temporary_bytes',
    'ddp_bucket_bytes', 'eager_attention_bytes', 'eager_attention_extra',
    'extrapolate_memory', 'extrapolate_timeline', 'flop_counter_mode',
    'image_shape', 'leaf_optim_wrappers', 'load_calibration', 'load_config',
    'make_batch', 'margin_text', 'measure_config', 'measure_memory_lines',
    'measure_step', 'measure_timelines', 'memory_timeline', 'memory_trace',
    'min_budget_gib', 'optimizer_tensors', 'per_device_batch', 'plan_memory',
    'planned_timeline', 'ratio', 'resident_bytes', 'train_flops_per_image',
    'train_step_flops', 'usable_bytes'
]
