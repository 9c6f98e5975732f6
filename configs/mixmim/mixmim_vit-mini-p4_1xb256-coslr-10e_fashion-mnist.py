# MixMIM on the cost-matched ViT-Mini/4 family: the MAE baseline's encoder
# (configs/mae/mae_vit-mini-p4_1xb256-coslr-10e_fashion-mnist.py) as a plain
# ViT, 32-px Fashion-MNIST. Mixing cells of 8 px (2x2 patches, as the 32-px
# cells of the ViT-B/16 config): 4x4 cells, 8 of them taken from the
# batch-flipped partner (ratio 0.5). MixMIM's dual-branch decoder at 1/8 of
# ViT-B/16's width: 64 dims (512 / 8), 8 layers, 2 heads of 32.
# Data and schedule are the MAE baseline's.
_base_ = ['../mae/mae_vit-mini-p4_1xb256-coslr-10e_fashion-mnist.py']

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
        embed_dim=96,
        encoder_stride=4,  # one decoded token = one 4-px patch
        decoder_embed_dim=64,
        decoder_depth=8,
        decoder_num_heads=2,
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
