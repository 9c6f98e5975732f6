# MAE baseline of the cost-matched family: ViT-Mini/4 (ViT-B/16's MAE at 1/8
# width: 96-dim encoder, 64-dim x 8-layer decoder) on 32-px Fashion-MNIST,
# one CPU or GPU. The BIM, PR-MIM, LocalMIM and MixMIM *_vit-mini-p4_*
# configs keep their ViT-B/16 FLOPs and memory ratios to this config
# (docs/experiments/equal_budget.md).
_base_ = [
    '../_base_/models/mae_vit-mini-p4.py',
    '../_base_/datasets/fashion-mnist_bs256_mae.py',
    '../_base_/default_runtime.py',
]

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
default_hooks = dict(logger=dict(interval=20))
auto_scale_lr = dict(base_batch_size=256)
