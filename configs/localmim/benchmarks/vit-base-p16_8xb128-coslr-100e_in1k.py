# Fine-tune a LocalMIM ViT-B/16 on ImageNet-1k with the official recipe for
# the 1600-epoch model (Haoqing-Wang/LocalMIM ViT/README.md): 8 x 128
# images, 100 epochs with 20 warm-up, lr 2e-3 to min_lr 1e-5, layer decay
# 0.65, wd 0.05, drop path 0.1, RandomErasing 0.25, Mixup 0.8, CutMix 1.0,
# global average pooling. mmpretrain's MAE fine-tuning config already has all
# of it except the schedule. The tap norms and decoders of the pre-training
# checkpoint are ignored (give it with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
# or convert an official checkpoint with
# tools/model_converters/localmim_to_mmpretrain.py --out-format backbone).
# For a 100-epoch pre-trained model the official recipe uses lr 4e-3, layer
# decay 0.75 and min_lr 1e-6.
_base_ = 'mmpretrain::mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py'
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=20,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=80,
        by_epoch=True,
        begin=20,
        end=100,
        eta_min=1e-5,
        convert_to_iter_based=True)
]
