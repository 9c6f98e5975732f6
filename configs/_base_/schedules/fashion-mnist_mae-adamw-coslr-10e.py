# The MAE baseline's optimizer and schedule on Fashion-MNIST (batch 256, 10
# epochs), shared by the ViT-Tiny/4 and ViT-Mini/4 MAE configs and, through
# them, by every method's Fashion-MNIST config.
# MAE recipe: AdamW (0.9, 0.95), wd 0.05 except norms, biases and tokens,
# lr = base_lr * total_batch / 256; the base lr is 10x MAE's 1.5e-4 for this
# small model's short (10-epoch) schedule -- a choice, not a tuned value.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW',
        lr=1.5e-4 * 256 / 256 * 10,
        betas=(0.9, 0.95),
        weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={
            'ln': dict(decay_mult=0.0),
            'bias': dict(decay_mult=0.0),
            'pos_embed': dict(decay_mult=0.),
            'mask_token': dict(decay_mult=0.),
            'cls_token': dict(decay_mult=0.)
        }))

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

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=10)
auto_scale_lr = dict(base_batch_size=256)
