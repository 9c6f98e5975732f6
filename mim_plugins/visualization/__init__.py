# Copyright (c) OpenMMLab. All rights reserved.
from .reconstruction import (mae_panels, mae_reconstruct, reconstruct,
                             register_reconstructor,
                             render_reconstruction_grid,
                             save_reconstruction_grid)

__all__ = [
    'mae_panels', 'mae_reconstruct', 'reconstruct', 'register_reconstructor',
    'render_reconstruction_grid', 'save_reconstruction_grid'
]
