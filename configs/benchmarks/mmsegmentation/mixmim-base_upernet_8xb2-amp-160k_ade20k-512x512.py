# UperNet on ADE20K with a MixMIM-B (Swin-B/W14) backbone: 160k iterations,
# 8 x 2 crops of 512 px. The backbone is the plugin's
# MixMIMPyramidTransformer (MixMIMTransformer's parameters, so mmpretrain
# MixMIM checkpoints load with prefix 'backbone.'; four stage maps at strides
# 4/8/16/32 with 128/256/512/1024 channels, each through a LayerNorm), fed
# directly to UperNet (no Feature2Pyramid: the backbone is hierarchical) with
# the FCN auxiliary head on stage 2. Layer-wise lr decay over the 24 blocks
# through the plugin's constructor; lr / decay values are the usual
# Swin/ConvNeXt UperNet ones, not tuned for MixMIM.
#   tools/benchmarks/mmsegmentation/mim_dist_train.sh THIS_CONFIG PRETRAIN 8
_base_ = [
    'mmseg::_base_/models/upernet_swin.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
custom_imports = dict(
    imports=['mmpretrain.models', 'mim_plugins'], allow_failed_imports=False)

crop_size = (512, 512)
stage_channels = [128, 256, 512, 1024]  # MixMIM-B: C, 2C, 4C, 8C
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        _delete_=True,
        type='mmpretrain.MixMIMPyramidTransformer',
        arch='B',
        img_size=224,
        window_size=[14, 14, 14, 7],
        drop_path_rate=0.2,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')),
    decode_head=dict(
        in_channels=stage_channels, channels=512, num_classes=150),
    auxiliary_head=dict(in_channels=stage_channels[2], num_classes=150),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))

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
        type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=1.0,
        begin=1500,
        end=160000,
        by_epoch=False)
]

train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
