# Fine-tune a pre-trained ViT-Tiny/4 on 32-px Fashion-MNIST (MAE's recipe,
# scaled down: layer-wise lr decay, label smoothing, drop path).
# Give the pre-trained checkpoint with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = [
    '../../_base_/datasets/fashion-mnist_root.py',
    '../../_base_/default_runtime.py'
]
data_root = {{_base_.data_root}}

data_preprocessor = dict(
    type='ClsDataPreprocessor',
    num_classes=10,
    mean=[72.94],
    std=[90.02],
    to_rgb=False)

train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=2),  # 28 -> 32 px, centred
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs')
]
test_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=2),
    dict(type='PackInputs')
]

train_dataloader = dict(
    batch_size=256,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='FashionMNIST',
        data_prefix=data_root,
        test_mode=False,
        download=False,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=500,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='FashionMNIST',
        data_prefix=data_root,
        test_mode=True,
        download=False,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='VisionTransformer',
        arch='deit-tiny',
        img_size=32,
        patch_size=4,
        in_channels=1,
        drop_path_rate=0.1,
        out_type='avg_featmap',
        final_norm=False,
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=192,
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        init_cfg=[dict(type='TruncNormal', layer='Linear', std=2e-5)]))

optim_wrapper = dict(
    optimizer=dict(
        type='AdamW', lr=1e-3, weight_decay=0.05, betas=(0.9, 0.999)),
    constructor='LearningRateDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        layer_decay_rate=0.75,
        custom_keys={
            '.ln': dict(decay_mult=0.0),
            '.bias': dict(decay_mult=0.0),
            '.cls_token': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0)
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
        eta_min=1e-6,
        convert_to_iter_based=True)
]

train_cfg = dict(by_epoch=True, max_epochs=10, val_interval=1)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1))
custom_hooks = [dict(type='NonFiniteLossHook')]  # no reconstructions here
auto_scale_lr = dict(base_batch_size=256)
