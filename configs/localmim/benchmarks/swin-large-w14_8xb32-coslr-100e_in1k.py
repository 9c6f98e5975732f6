# Fine-tune a LocalMIM Swin-L (window 14) on ImageNet-1k with the official
# recipe (Haoqing-Wang/LocalMIM Swin/README.md): 8 x 32 images with 8
# accumulation steps (2048 per update), 100 epochs with 20 warm-up, lr 2e-3,
# layer decay 0.8, wd 0.05, drop path 0.3. The data pipeline, global
# average pooling, the layer-decay constructor and the no-decay keys are
# those of mmpretrain's SimMIM Swin fine-tuning, through the LocalMIM Swin-B
# fine-tuning config. The windows are the pre-training model's (14, and 7
# for the 7x7 last stage, see
# configs/localmim/localmim_swin-large-w14_8xb128-amp-coslr-800e_in1k.py),
# so converted official weights load strictly: give them with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
# after tools/model_converters/localmim_to_mmpretrain.py --out-format
# backbone.
_base_ = './swin-base-w7_8xb128-coslr-100e_in1k.py'

_ln = dict(type='LN', eps=1e-6)
_stage = dict(block_cfgs=dict(norm_cfg=_ln), downsample_cfg=dict(norm_cfg=_ln))

model = dict(
    backbone=dict(
        arch='large',
        window_size=14,
        drop_path_rate=0.3,
        stage_cfgs=[_stage, _stage, _stage,
                    dict(_stage, window_size=7)]),
    head=dict(in_channels=1536))

train_dataloader = dict(batch_size=32)

# gradient clipping (5.0) and min lr (1e-6) stay as in mmpretrain's recipe
optim_wrapper = dict(
    optimizer=dict(lr=2e-3),
    accumulative_counts=8,
    paramwise_cfg=dict(layer_decay_rate=0.8))

auto_scale_lr = dict(base_batch_size=2048)
