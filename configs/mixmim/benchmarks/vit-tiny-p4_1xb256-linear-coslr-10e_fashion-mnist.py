# Linear probe of a MixMIM plain ViT-Tiny/4 (MixMIMViT has VisionTransformer
# keys) on 32-px Fashion-MNIST with the MAE baseline's linear-probe recipe
# (frozen backbone, ClsBatchNormNeck, LARS). Give the pre-trained checkpoint
# with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = [
    '../../mae/benchmarks/vit-tiny-p4_1xb256-linear-coslr-10e_fashion-mnist.py'
]
