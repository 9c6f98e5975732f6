# Fine-tune a plugin-pre-trained MAE ViT-B/16 on ImageNet-1k with mmpretrain's
# MAE recipe: 8 x 128 images, 100 epochs (5 warm-up), AdamW lr 2e-3,
# layer-wise lr decay 0.65, drop path 0.1, RandAugment, Mixup 0.8 /
# CutMix 1.0, label smoothing 0.1, RandomErasing 0.25, global average pooling.
# Give the pre-trained checkpoint (full or extracted backbone) with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = 'mmpretrain::mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py'
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)
