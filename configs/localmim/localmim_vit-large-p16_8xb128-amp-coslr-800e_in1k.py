# LocalMIM ViT-L/16 on ImageNet-1k, the official recipe: 8 x 128 images with
# 4-step gradient accumulation (4096 per step), blr 1.5e-4
# (lr = 1.5e-4 * 4096 / 256 = 2.4e-3), 800 epochs (40 warm-up), HOG with
# 18 bins and the frozen random Sobel bias (official `--hog_bias`).
_base_ = './localmim_vit-base-p16_8xb256-amp-coslr-1600e_in1k.py'

model = dict(
    # taps after blocks 2, 4, 22, 24 (1-based)
    backbone=dict(arch='l', out_indices=[1, 3, 21, 23]),
    neck=dict(embed_dim=1024, out_channels=[54, 54, 54, 54]),
    head=dict(n_bins=18, hog_bias=True))

train_dataloader = dict(batch_size=128)

optim_wrapper = dict(
    optimizer=dict(lr=1.5e-4 * 4096 / 256), accumulative_counts=4)

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
        eta_min=1e-6,
        by_epoch=True,
        begin=40,
        end=800,
        convert_to_iter_based=True)
]

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=800)
auto_scale_lr = dict(base_batch_size=4096)
