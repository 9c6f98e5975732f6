# MixMIM-B, 600 epochs: the official Sense-X/MixMIM schedule (40-epoch
# warmup, cosine to 0), 85.1 % top-1 after fine-tuning in the paper.
_base_ = './mixmim_mixmim-base_16xb128-coslr-300e_in1k.py'

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
        T_max=560,
        by_epoch=True,
        begin=40,
        end=600,
        convert_to_iter_based=True)
]

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=600)
