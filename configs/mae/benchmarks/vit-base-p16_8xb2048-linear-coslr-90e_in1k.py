# Linear probe of a plugin-pre-trained MAE ViT-B/16 on ImageNet-1k with
# mmpretrain's MAE recipe: frozen backbone (frozen_stages=12, final norm
# included), [CLS] token -> BatchNorm without affine (ClsBatchNormNeck) ->
# linear head, LARS lr 6.4 (0.1 x 16384/256), 90 epochs (10 warm-up),
# 8 x 2048 images.
# Give the pre-trained checkpoint (full or extracted backbone) with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = ('mmpretrain::mae/benchmarks/'
          'vit-base-p16_8xb2048-linear-coslr-90e_in1k.py')
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)
