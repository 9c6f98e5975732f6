# BIM ViT-L/16 on ImageNet-1k: mmpretrain's 400-epoch MAE ViT-L recipe with
# the 24-layer encoder cut into K=4 blocks of 6 layers, each trained by its
# own 2-layer MAE decoder (width 512).
_base_ = [
    'mmpretrain::mae/mae_vit-large-p16_8xb512-amp-coslr-400e_in1k.py',
    '../_base_/plugin_hooks.py',
]
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

model = dict(
    type='BIM',
    backbone=dict(type='BIMViT', block_boundaries=[6, 12, 18, 24]),
    neck=dict(decoder_depth=2))

optim_wrapper = dict(
    constructor='BIMOptimWrapperConstructor',
    paramwise_cfg=dict(custom_keys={'block_norms': dict(decay_mult=0.)}))

model_wrapper_cfg = dict(type='mmpretrain.BIMDistributedDataParallel')

# mmengine adds `_scope_` to a `collate_fn` inherited from an `mmpretrain::`
# base, which then reaches default_collate as a keyword: declare it anew.
train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))
