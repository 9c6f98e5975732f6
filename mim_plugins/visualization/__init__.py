# Copyright (c) OpenMMLab. All rights reserved.
from .reconstruction import mae_reconstruct, save_reconstruction_grid

__all__ = ['mae_reconstruct', 'save_reconstruction_grid']
