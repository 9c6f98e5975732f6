# Linear probe of a MixMIM-B (Swin-B/W14) on ImageNet-1k. mmpretrain has no
# MixMIM linear-probe recipe, so this is its MAE one (LARS lr 6.4, 90 epochs,
# 8 x 2048 images, BatchNorm without affine before the linear head) on the
# frozen MixMIM-B: the plugin's MixMIMPyramidTransformer with every stage
# frozen returns the last stage through the pre-trained final norm, and
# average pooling gives the same 1024-d feature as MixMIMTransformer.
# Give the pre-trained checkpoint with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = ('mmpretrain::mae/benchmarks/'
          'vit-base-p16_8xb2048-linear-coslr-90e_in1k.py')
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='MixMIMPyramidTransformer',
        arch='B',
        img_size=224,
        drop_path_rate=0.0,
        out_indices=(3, ),
        frozen_stages=4,
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')),
    # a list of necks is built as nn.Sequential
    neck=[
        dict(type='GlobalAveragePooling'),
        dict(type='ClsBatchNormNeck', input_features=1024)
    ],
    head=dict(in_channels=1024))
