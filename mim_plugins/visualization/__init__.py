# Copyright (c) OpenMMLab. All rights reserved.
from .localmim import localmim_panels
from .mixmim import mixmim_panels
from .prmim import prmim_panels
from .reconstruction import (bim_panels, mae_panels, mae_reconstruct,
                             predicted_patches, reconstruct,
                             register_reconstructor,
                             render_reconstruction_grid,
                             save_reconstruction_grid)

__all__ = [
    'localmim_panels', 'bim_panels', 'predicted_patches', 'mae_panels',
    'mae_reconstruct', 'mixmim_panels', 'prmim_panels', 'reconstruct',
    'register_reconstructor', 'render_reconstruction_grid',
    'save_reconstruction_grid'
]
