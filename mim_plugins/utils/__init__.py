# Copyright (c) OpenMMLab. All rights reserved.
from .cpu_distributed import setup_cpu_distributed
from .safe_checkpoint_loading import (CorruptCheckpointError,
                                      UnsafeCheckpointError)
from .schedule import set_max_epochs
from .setup_env import register_all_modules

__all__ = [
    'CorruptCheckpointError', 'UnsafeCheckpointError', 'register_all_modules',
    'set_max_epochs', 'setup_cpu_distributed'
]
