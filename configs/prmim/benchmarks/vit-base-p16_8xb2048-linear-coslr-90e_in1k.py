# Linear probe of a PR-MIM ViT-B/16 on ImageNet-1k with mmpretrain's MAE
# recipe: frozen backbone, [CLS] token -> ClsBatchNormNeck -> linear head,
# LARS lr 6.4, 90 epochs, 8 x 2048 images. Give the checkpoint with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = ('mmpretrain::mae/benchmarks/'
          'vit-base-p16_8xb2048-linear-coslr-90e_in1k.py')
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)
