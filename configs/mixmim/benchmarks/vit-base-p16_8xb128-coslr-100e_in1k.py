# Fine-tune a MixMIM-pre-trained plain ViT-B/16 on ImageNet-1K: mmpretrain's
# MAE ViT-B fine-tune recipe with MixMIM's layer-wise lr decay 0.7. The
# MixMIMViT encoder has VisionTransformer's keys, so it loads with
# `prefix='backbone.'`:
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = 'mmpretrain::mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py'
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.7))
