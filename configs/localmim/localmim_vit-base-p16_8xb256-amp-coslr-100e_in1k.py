# LocalMIM ViT-B/16, 100-epoch schedule of the official recipe
# (warm-up 10 epochs, as the official README sets for 100-epoch runs).
_base_ = './localmim_vit-base-p16_8xb256-amp-coslr-1600e_in1k.py'

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=10,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=90,
        eta_min=1e-6,
        by_epoch=True,
        begin=10,
        end=100,
        convert_to_iter_based=True)
]

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=100)
