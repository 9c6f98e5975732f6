# MixMIM on a plain ViT-Tiny/4 (the encoder shared with the MAE baseline),
# 32-px Fashion-MNIST, one CPU or GPU. Mixing cells of 8 px: 4x4 cells,
# 8 of them taken from the batch-flipped partner (ratio 0.5).
# Data and schedule are the MAE baseline's.
_base_ = ['../mae/mae_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py']

model = dict(
    type='MixMIMPlus',
    backbone=dict(
        type='MixMIMViT', cell_size=8,
        mask_ratio=0.5),  # arch/img_size/patch/in_channels from the base
    neck=dict(
        _delete_=True,
        type='MixMIMPlusPretrainDecoder',
        num_patches=64,
        in_chans=1,
        embed_dim=192,
        encoder_stride=4,  # one decoded token = one 4-px patch
        decoder_embed_dim=128,
        decoder_depth=2,
        decoder_num_heads=4,
        mlp_ratio=4,
        init_mode='official'),  # xavier on every decoder Linear
    head=dict(
        _delete_=True,
        type='MixMIMPlusPretrainHead',
        norm_pix=True,
        in_channels=1,
        loss=dict(type='PixelReconstructionLoss', criterion='L2')))

# MixMIM's weight decay: none on any 1-D parameter (official timm
# `add_weight_decay`: all norms and biases) instead of MAE's name keys.
optim_wrapper = dict(paramwise_cfg=dict(_delete_=True, flat_decay_mult=0.0))

# batch-flip pairing needs an even batch on every step
train_dataloader = dict(drop_last=True)
