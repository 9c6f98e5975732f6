# LocalMIM Swin-B (window 7) on ImageNet-1k, the official recipe
# (Haoqing-Wang/LocalMIM Swin/, `mim_swin_base_patch4_win7`): 8 x 256 images,
# AMP, AdamW (0.9, 0.95), wd 0.05, blr 1e-4 (lr = 1e-4 * 2048 / 256 = 8e-4),
# 40-epoch warm-up, half-cycle cosine to 0, 400 epochs; one mask per batch
# on 32-px cells at ratio 0.75 (37 of 49 cells, the official count); taps
# after every stage's patch merging (28x28, 14x14, 7x7, 7x7); HOG with 18
# bins and the frozen random Sobel bias on 8 / 16 / 32 / 32-px cells.
# The encoder computes visible tokens only (`encoder_mode='visible'`, see
# docs/methods/localmim.md); official checkpoints load after
# tools/model_converters/localmim_to_mmpretrain.py.
_base_ = [
    'mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py',
    '../_base_/plugin_hooks.py',
]
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='LocalMIM',
    backbone=dict(
        type='LocalMIMSwin',
        arch='base',  # C=128, depths [2, 2, 18, 2], heads [4, 8, 16, 32]
        img_size=224,
        window_size=7,
        drop_path_rate=0.0,  # not given in the reference notes
        mask_ratio=0.75,
        mask_patch_size=32,
        out_indices=[0, 1, 2, 3],
        # the official model's LayerNorms all use eps 1e-6
        norm_cfg=dict(type='LN', eps=1e-6),
        patch_cfg=dict(norm_cfg=dict(type='LN', eps=1e-6)),
        stage_cfgs=dict(
            block_cfgs=dict(norm_cfg=dict(type='LN', eps=1e-6)),
            downsample_cfg=dict(norm_cfg=dict(type='LN', eps=1e-6)))),
    neck=dict(
        type='LocalMIMSwinNeck',
        in_channels=[256, 512, 1024, 1024],
        grids=[28, 14, 7, 7],
        out_channels=[54, 54, 54, 54],  # 3 channels x 18 bins
        decoder_embed_dim=128,  # 64 for the stage-1 decoder
        decoder_depth=1,
        decoder_num_heads=4,
        mlp_ratio=4.),
    # losses are masked on the 7x7 grid of 32-px cells: x4, x2, x1, x1
    head=dict(
        type='LocalMIMHead',
        patch_size=32,
        scales=[4, 2, 1, 1],
        target='hog',
        in_channels=3,
        n_bins=18,
        hog_bias=True,
        loss=dict(type='PixelReconstructionLoss', criterion='L2'),
        loss_weights=[1., 1., 1., 1.]))

# mmengine adds `_scope_` to a `collate_fn` inherited from an `mmpretrain::`
# base, which then reaches default_collate as a keyword: declare it anew.
train_dataloader = dict(
    batch_size=256, collate_fn=dict(_delete_=True, type='default_collate'))

optim_wrapper = dict(
    optimizer=dict(lr=1e-4 * 2048 / 256),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
        }))

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
        T_max=360,
        eta_min=0.,
        by_epoch=True,
        begin=40,
        end=400,
        convert_to_iter_based=True)
]

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=400)
auto_scale_lr = dict(base_batch_size=2048)
