# LocalMIM Swin-L (window 14) on ImageNet-1k, the official recipe
# (Haoqing-Wang/LocalMIM Swin/, `mim_swin_large_patch4_win14`): 8 x 128
# images with 4-step gradient accumulation (4096 per update), AMP, AdamW
# (0.9, 0.95), wd 0.05, blr 1e-4 (lr = 1e-4 * 4096 / 256 = 1.6e-3), 40-epoch
# warm-up, half-cycle cosine to 0, 800 epochs; HOG with 18 bins and the
# frozen random Sobel bias, as the Swin-B HOG config.
# Windows: at 224 px the stage maps are 56/28/14/7. As in the official Swin
# code, a stage whose map is not larger than the window runs one unshifted
# window of the map's size: stage 3 (14x14) one 14x14 window, stage 4 one
# 7x7 window with its own 13x13 bias table (`window_size=7` below; mmpretrain
# would otherwise need `pad_small_map`, which pads and keeps the shift).
# Official checkpoints load after
# tools/model_converters/localmim_to_mmpretrain.py.
_base_ = './localmim_swin-base-w7_8xb256-amp-coslr-400e_in1k.py'

_ln = dict(type='LN', eps=1e-6)
_stage = dict(block_cfgs=dict(norm_cfg=_ln), downsample_cfg=dict(norm_cfg=_ln))

model = dict(
    backbone=dict(
        arch='large',  # C=192, depths [2, 2, 18, 2], heads [6, 12, 24, 48]
        window_size=14,
        stage_cfgs=[_stage, _stage, _stage,
                    dict(_stage, window_size=7)]),
    neck=dict(in_channels=[384, 768, 1536, 1536]))

train_dataloader = dict(batch_size=128)

optim_wrapper = dict(
    optimizer=dict(lr=1e-4 * 4096 / 256), accumulative_counts=4)

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
        T_max=760,
        eta_min=0.,
        by_epoch=True,
        begin=40,
        end=800,
        convert_to_iter_based=True)
]

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=800)
auto_scale_lr = dict(base_batch_size=4096)
