# Hooks of every plugin pre-training config (also those built on
# `mmpretrain::` recipes):
# - reconstructions of a fixed training batch, sent to the visualizer
#   backends (work_dir/<timestamp>/vis_data/vis_image) every `interval`
#   iterations;
# - NonFiniteLossHook stops at the first NaN/Inf loss (action='skip' skips
#   such steps instead);
# - RandomStateHook stores the torch/numpy/Python random states in every
#   checkpoint and restores them on resume, so a resumed run continues
#   exactly as an uninterrupted one.
custom_hooks = [
    dict(type='ReconstructionVisualizationHook', interval=500, num_images=8),
    dict(type='NonFiniteLossHook', action='stop'),
    dict(type='RandomStateHook'),
]
