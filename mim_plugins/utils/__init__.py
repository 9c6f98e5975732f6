# Copyright (c) OpenMMLab. All rights reserved.
from .compat import (CPUAmpOptimWrapper, apply_all, load_http_checkpoint,
                     load_local_checkpoint, setup_cpu_distributed,
                     strip_collate_scope)
from .schedule import set_max_epochs
from .setup_env import register_all_modules

__all__ = [
    'CPUAmpOptimWrapper', 'apply_all', 'load_http_checkpoint',
    'load_local_checkpoint', 'setup_cpu_distributed', 'strip_collate_scope',
    'register_all_modules', 'set_max_epochs'
]
