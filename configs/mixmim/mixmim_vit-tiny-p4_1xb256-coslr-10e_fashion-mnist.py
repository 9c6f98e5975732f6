# MixMIM on a plain ViT-Tiny/4 (the encoder shared with the MAE baseline),
# 32-px Fashion-MNIST, one CPU or GPU. Mixing cells of 8 px: 4x4 cells,
# 8 of them taken from the batch-flipped partner (ratio 0.5).
_base_ = [
    '../_base_/models/mae_vit-tiny-p4.py',
    '../_base_/datasets/fashion-mnist_bs256_mae.py',
    '../_base_/default_runtime.py',
]

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

# MixMIM/MAE recipe: lr = 1.5e-4 * total_batch / 256 (x10 for the short
# schedule, as the MAE baseline), AdamW (0.9, 0.95), wd 0.05 except 1-D
# parameters (official timm `add_weight_decay`: all norms and biases).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW',
        lr=1.5e-4 * 256 / 256 * 10,
        betas=(0.9, 0.95),
        weight_decay=0.05),
    paramwise_cfg=dict(flat_decay_mult=0.0))

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

# batch-flip pairing needs an even batch on every step
train_dataloader = dict(drop_last=True)
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=10)
default_hooks = dict(logger=dict(interval=20))
auto_scale_lr = dict(base_batch_size=256)
