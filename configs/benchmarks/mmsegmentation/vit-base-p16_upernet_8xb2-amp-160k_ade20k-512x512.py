# UperNet on ADE20K with a plugin-pre-trained ViT-B/16 (mmseg 1.2's MAE
# recipe: Feature2Pyramid, layer decay 0.65, 160k iterations, 8 x 2 images).
# The backbone is mmpretrain's VisionTransformer, so checkpoints of MAE, BIM,
# PR-MIM, LocalMIM and the plain-ViT MixMIM load with prefix 'backbone.':
#   tools/benchmarks/mmsegmentation/mim_dist_train.sh THIS_CONFIG PRETRAIN 8
_base_ = [
    'mmseg::_base_/models/upernet_mae.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
custom_imports = dict(
    imports=['mmpretrain.models', 'mim_plugins'], allow_failed_imports=False)

crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        _delete_=True,
        type='mmpretrain.VisionTransformer',
        arch='base',
        img_size=crop_size,
        patch_size=16,
        out_indices=(3, 5, 7, 11),
        out_type='featmap',
        drop_path_rate=0.1,
        final_norm=False,
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')),
    neck=dict(embed_dim=768, rescales=[4, 2, 1, 0.5]),
    decode_head=dict(
        in_channels=[768, 768, 768, 768], num_classes=150, channels=768),
    auxiliary_head=dict(in_channels=768, num_classes=150),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))

# mmseg's LayerDecayOptimizerConstructor only knows BEiT/MAE/ConvNeXt class
# names; the plugin's constructor takes depths from backbone.get_layer_depth.
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='mmpretrain.BackboneLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        layer_decay_rate=0.65,
        norm_decay_mult=0.0,
        custom_keys={
            '.cls_token': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0)
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
