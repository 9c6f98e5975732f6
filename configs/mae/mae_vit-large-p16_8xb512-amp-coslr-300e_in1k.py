# mmpretrain's MAE ViT-L/16 recipe (plus the plugin's hooks): the ViT-L
# baseline of the memory planner (tools/analysis_tools/benchmark_efficiency.py
# --fit-memory).
_base_ = [
    'mmpretrain::mae/mae_vit-large-p16_8xb512-amp-coslr-300e_in1k.py',
    '../_base_/plugin_hooks.py',
]
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

# mmengine adds `_scope_` to a `collate_fn` inherited from an `mmpretrain::`
# base, which then reaches default_collate as a keyword: declare it anew.
train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))
