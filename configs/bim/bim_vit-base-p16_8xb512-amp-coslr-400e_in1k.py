# BIM ViT-B/16 on ImageNet-1k: mmpretrain's 400-epoch MAE recipe (8 x 512
# images, AMP, AdamW, 40-epoch warm-up + cosine) with the encoder cut into
# K=4 blocks of 3 layers, each trained by its own 2-layer MAE decoder.
_base_ = [
    'mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-400e_in1k.py',
    '../_base_/plugin_hooks.py',
]
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

# The base's decoder (width 512, 16 heads) is built once per block; it is
# made 2 layers deep because with one 8-layer decoder per block the decoder
# activations dominate each block's peak memory (docs/experiments/bim.md).
model = dict(
    type='BIM',
    backbone=dict(type='BIMViT', block_boundaries=[3, 6, 9, 12]),
    neck=dict(decoder_depth=2))

# One AdamW + GradScaler per block, same hyper-parameters and schedule as
# MAE; norms of intermediate blocks are excluded from weight decay too.
optim_wrapper = dict(
    constructor='BIMOptimWrapperConstructor',
    paramwise_cfg=dict(custom_keys={'block_norms': dict(decay_mult=0.)}))

# Each block's gradients are all-reduced right after its backward.
model_wrapper_cfg = dict(type='mmpretrain.BIMDistributedDataParallel')

# mmengine adds `_scope_` to a `collate_fn` inherited from an `mmpretrain::`
# base, which then reaches default_collate as a keyword: declare it anew.
train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))
