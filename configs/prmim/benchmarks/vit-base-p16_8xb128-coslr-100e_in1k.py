# Fine-tune a PR-MIM ViT-B/16 on ImageNet-1k. PR-MIM changes only the
# decoder input and loss of MAE, so the encoder (MAEViT, VisionTransformer
# keys) is fine-tuned with mmpretrain's MAE recipe: 100 epochs, AdamW lr 2e-3,
# layer-wise lr decay 0.65, drop path 0.1, RandAugment, Mixup/CutMix.
# The decoder of the pre-training checkpoint is ignored; give it with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = 'mmpretrain::mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py'
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)
