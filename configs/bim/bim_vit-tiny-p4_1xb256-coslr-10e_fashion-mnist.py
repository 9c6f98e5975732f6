# BIM: ViT-Tiny/4 encoder (same as the MAE baseline) cut into K=4 blocks of
# 3 layers, each with its own 2-layer MAE decoder; 32-px Fashion-MNIST.
_base_ = [
    '../_base_/models/mae_vit-tiny-p4.py',
    '../_base_/datasets/fashion-mnist_bs256_mae.py',
    '../_base_/default_runtime.py',
]

# The decoder and head of the MAE base are shared configs, built once per
# block; pass a list of K configs to give blocks different decoders.
model = dict(
    type='BIM', backbone=dict(type='BIMViT', block_boundaries=[3, 6, 9, 12]))

# Same recipe as the MAE baseline, with one AdamW per block.
optim_wrapper = dict(
    constructor='BIMOptimWrapperConstructor',
    type='OptimWrapper',  # per-block wrapper; `--amp` -> AmpOptimWrapper
    optimizer=dict(
        type='AdamW',
        lr=1.5e-4 * 256 / 256 * 10,
        betas=(0.9, 0.95),
        weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={
            'ln': dict(decay_mult=0.0),
            'block_norms': dict(decay_mult=0.0),
            'bias': dict(decay_mult=0.0),
            'pos_embed': dict(decay_mult=0.),
            'mask_token': dict(decay_mult=0.),
            'cls_token': dict(decay_mult=0.)
        }))

# Every block follows the same schedule.
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=1,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=9,
        by_epoch=True,
        begin=1,
        end=10,
        convert_to_iter_based=True)
]

# Distributed: each block's gradients are all-reduced right after its
# backward (the runner looks wrappers up in mmengine's root registry, hence
# the scope prefix).
model_wrapper_cfg = dict(type='mmpretrain.BIMDistributedDataParallel')

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=10)
default_hooks = dict(logger=dict(interval=20))
auto_scale_lr = dict(base_batch_size=256)
