# LocalMIM ViT-B/16 on ImageNet-1k, the official recipe (Haoqing-Wang/LocalMIM,
# ViT/README.md): 8 x 256 images, AMP, AdamW (0.9, 0.95), wd 0.05,
# blr 2e-4 (lr = blr * 2048 / 256 = 1.6e-3), 40-epoch warm-up, half-cycle
# cosine to 1e-6, 1600 epochs, mask ratio 0.75, HOG with 9 bins.
# Data pipeline (RandomResizedCrop 224 (0.2, 1) bicubic + flip, ImageNet
# normalisation) is mmpretrain's MAE one, which matches the official one.
_base_ = [
    'mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py',
    '../_base_/plugin_hooks.py',
]
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

model = dict(
    type='LocalMIM',
    # taps after blocks 2, 4, 10, 12 (1-based), each with its own LayerNorm
    backbone=dict(type='LocalMIMViT', out_indices=[1, 3, 9, 11]),
    # x4 / x2 / x1 / x1/2 of the 14x14 grid: 56x56, 28x28, 14x14, 7x7
    neck=dict(
        _delete_=True,
        type='LocalMIMNeck',
        num_patches=196,
        embed_dim=768,
        out_channels=[27, 27, 27, 27],  # 3 colour channels x 9 bins
        scales=[4, 2, 1, 0.5],
        decoder_embed_dim=256,
        decoder_depth=1,
        decoder_num_heads=8,
        mlp_ratio=4.),
    # HOG on 4 / 8 / 16 / 32-px cells
    head=dict(
        _delete_=True,
        type='LocalMIMHead',
        patch_size=16,
        scales=[4, 2, 1, 0.5],
        target='hog',
        in_channels=3,
        n_bins=9,
        hog_bias=False,
        loss=dict(type='PixelReconstructionLoss', criterion='L2'),
        loss_weights=[1., 1., 1., 1.]))

# mmengine adds `_scope_` to a `collate_fn` inherited from an `mmpretrain::`
# base, which then reaches default_collate as a keyword: declare it anew.
train_dataloader = dict(
    batch_size=256, collate_fn=dict(_delete_=True, type='default_collate'))

# Weight decay as the official code (timm's add_weight_decay): none on 1-D
# parameters (norms, the tap and decoder norms included) and biases; the
# class and mask tokens are decayed (the MAE base exempts them: deleted).
optim_wrapper = dict(
    optimizer=dict(lr=2e-4 * 2048 / 256),
    paramwise_cfg=dict(
        _delete_=True, norm_decay_mult=0.0, bias_decay_mult=0.0))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=40,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=1560,
        eta_min=1e-6,
        by_epoch=True,
        begin=40,
        end=1600,
        convert_to_iter_based=True)
]

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1600)
auto_scale_lr = dict(base_batch_size=2048)
