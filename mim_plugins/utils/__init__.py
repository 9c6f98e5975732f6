# Copyright (c) OpenMMLab. All rights reserved.
from .cpu_distributed import setup_cpu_distributed
from .safe_checkpoint_loading import (CorruptCheckpointError,
                                      UnsafeCheckpointError,
                                      load_from_http_safely,
                                      load_from_local_safely)
from .schedule import set_max_epochs
from .setup_env import register_all_modules

__all__ = [
    'CorruptCheckpointError', 'UnsafeCheckpointError', 'load_from_http_safely',
    'load_from_local_safely', 'register_all_modules', 'set_max_epochs',
    'setup_cpu_distributed'
]
