# Mask R-CNN on COCO with a MixMIM-B (Swin-B/W14) backbone, 1x schedule.
# The backbone is the plugin's MixMIMPyramidTransformer: MixMIMTransformer's
# parameters (so mmpretrain MixMIM pre-training or fine-tuning checkpoints
# load with prefix 'backbone.') returning the four stage maps (strides
# 4/8/16/32, 128/256/512/1024 channels, each through a LayerNorm) to mmdet's
# FPN. The absolute position embedding is resized to each input and stages
# larger than their window use padded windowed attention.
# Layer-wise lr decay over MixMIM-B's 24 blocks through the plugin's
# constructor; lr, weight decay, drop path and decay rate are the usual
# Swin/ConvNeXt Mask R-CNN values, not tuned for MixMIM.
#   tools/benchmarks/mmdetection/mim_dist_train.sh THIS_CONFIG PRETRAIN 8
# or, with mim directly,
#   --cfg-options model.backbone.init_cfg.checkpoint=PRETRAIN
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(
    imports=['mmpretrain.models', 'mim_plugins'], allow_failed_imports=False)

stage_channels = [128, 256, 512, 1024]  # MixMIM-B: C, 2C, 4C, 8C
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.MixMIMPyramidTransformer',
        arch='B',
        img_size=224,
        window_size=[14, 14, 14, 7],
        drop_path_rate=0.2,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')),
    neck=dict(in_channels=stage_channels, out_channels=256, num_outs=5))

optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='mmpretrain.BackboneLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        layer_decay_rate=0.85,
        norm_decay_mult=0.0,
        custom_keys={
            '.absolute_pos_embed': dict(decay_mult=0.0),
            '.relative_position_bias_table': dict(decay_mult=0.0)
        }))

param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(
        type='MultiStepLR',
        begin=0,
        end=12,
        by_epoch=True,
        milestones=[8, 11],
        gamma=0.1)
]
auto_scale_lr = dict(enable=False, base_batch_size=16)
