# Linear probe of a pre-trained ViT-Tiny/4 on 32-px Fashion-MNIST (MAE's
# recipe, scaled down): frozen backbone (frozen_stages=12, final norm
# included), [CLS] token -> BatchNorm without affine (ClsBatchNormNeck) ->
# linear head, LARS, 10 epochs (1 warm-up).
# Give the pre-trained checkpoint with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = ['./vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py']

model = dict(
    backbone=dict(
        frozen_stages=12,
        drop_path_rate=0.0,
        out_type='cls_token',
        final_norm=True),
    neck=dict(_delete_=True, type='ClsBatchNormNeck', input_features=192),
    head=dict(
        _delete_=True,
        type='VisionTransformerClsHead',
        num_classes=10,
        in_channels=192,
        loss=dict(type='CrossEntropyLoss'),
        init_cfg=[dict(type='TruncNormal', layer='Linear', std=0.01)]))

# MAE: LARS, no weight decay, lr 0.1 x batch / 256; here 10x that for the
# 10-epoch schedule, as the Fashion-MNIST pre-training configs do (a choice:
# at 0.1 the head barely moves in a few hundred iterations).
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='LARS', lr=0.1 * 256 / 256 * 10, weight_decay=0.0, momentum=0.9))

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
        eta_min=0.0,
        convert_to_iter_based=True)
]
