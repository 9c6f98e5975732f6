# BIM on the cost-matched ViT-Mini/4 family, 32-px Fashion-MNIST: the MAE
# baseline's encoder (configs/mae/mae_vit-mini-p4_1xb256-coslr-10e_
# fashion-mnist.py) cut into K=4 blocks of 3 layers, each trained by its own
# 2-layer decoder of the baseline's width, as BIM's ViT-B/16 config (one
# 2 x 512 decoder per block on a 768-dim encoder). Data, optimizer and
# schedule are the MAE baseline's.
_base_ = ['../mae/mae_vit-mini-p4_1xb256-coslr-10e_fashion-mnist.py']

# The decoder and head of the MAE base are shared configs, built once per
# block; pass a list of K configs to give blocks different decoders.
model = dict(
    type='BIM',
    backbone=dict(type='BIMViT', block_boundaries=[3, 6, 9, 12]),
    neck=dict(decoder_depth=2))

# One AdamW per block (`--amp` makes each block's wrapper an AMP one); every
# block follows the same param_scheduler.
optim_wrapper = dict(
    constructor='BIMOptimWrapperConstructor',
    paramwise_cfg=dict(custom_keys={'block_norms': dict(decay_mult=0.0)}))

# Distributed: each block's gradients are all-reduced right after its
# backward (the runner looks wrappers up in mmengine's root registry, hence
# the scope prefix).
model_wrapper_cfg = dict(type='mmpretrain.BIMDistributedDataParallel')
