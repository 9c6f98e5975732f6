# Fine-tune a LocalMIM Swin-B (window 7) on ImageNet-1k with the official
# recipe (Haoqing-Wang/LocalMIM Swin/README.md): 8 x 128 images with 2
# accumulation steps for the 400-epoch HOG model (2048 per update), 100
# epochs with 20 warm-up, lr 4e-3, layer decay 0.9, wd 0.05, drop path 0.1.
# mmpretrain's SimMIM Swin-B fine-tuning config already has the data
# pipeline (RandAugment, RandomErasing 0.25, Mixup/CutMix from the Swin
# model), global average pooling, the layer-decay constructor and the
# no-decay keys. The pre-training checkpoint's tap norms and decoders are
# ignored (give it with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
# or convert an official checkpoint with
# tools/model_converters/localmim_to_mmpretrain.py --out-format backbone).
# For a 100-epoch pre-trained model the official recipe uses lr 5e-3 and no
# accumulation (optim_wrapper.accumulative_counts=1).
_base_ = 'mmpretrain::simmim/benchmarks/swin-base-w7_8xb256-coslr-100e_in1k.py'
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

# mmengine adds `_scope_` to a `collate_fn` inherited from an `mmpretrain::`
# base, which then reaches default_collate as a keyword: declare it anew.
train_dataloader = dict(
    batch_size=128, collate_fn=dict(_delete_=True, type='default_collate'))
val_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))
test_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))

# the official model's LayerNorms all use eps 1e-6 (as the pre-training
# configs), so converted weights see the same normalisation
model = dict(
    backbone=dict(
        drop_path_rate=0.1,
        norm_cfg=dict(type='LN', eps=1e-6),
        patch_cfg=dict(norm_cfg=dict(type='LN', eps=1e-6)),
        stage_cfgs=dict(
            block_cfgs=dict(norm_cfg=dict(type='LN', eps=1e-6)),
            downsample_cfg=dict(norm_cfg=dict(type='LN', eps=1e-6)))))

# gradient clipping (5.0) and min lr (1e-6) are not given by the reference
# notes; they stay as in mmpretrain's SimMIM recipe, whose schedule (20
# warm-up epochs, cosine over the other 80) is already the official one
optim_wrapper = dict(optimizer=dict(lr=4e-3), accumulative_counts=2)

auto_scale_lr = dict(base_batch_size=2048)
