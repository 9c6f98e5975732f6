# MixMIM on a plain ViT-B/16: 224 px, mixing cells of 32 px (7x7 cells, as
# MixMIM-B's stride-32 mask), ratio 0.5, same-source attention in all 12
# global attention layers; MixMIM's dual-branch decoder (8 x 512) and
# unmixing head on the 14x14 patch tokens. Same data, optimizer and
# schedule as MixMIM-B 300e. The encoder loads into mmpretrain's
# VisionTransformer (e.g. mmpretrain's MAE ViT-B fine-tune config with
# `prefix='backbone.'`).
_base_ = './mixmim_mixmim-base_16xb128-coslr-300e_in1k.py'

model = dict(
    type='MixMIMPlus',
    backbone=dict(
        _delete_=True,
        type='MixMIMViT',
        arch='b',
        img_size=224,
        patch_size=16,
        cell_size=32,
        mask_ratio=0.5),
    neck=dict(num_patches=196, embed_dim=768,
              encoder_stride=16),  # one decoded token = one 16-px patch
    init_cfg=[
        # official MixMIM (and MAE) init of the encoder Linears / norms;
        # the decoder re-applies its own `init_mode`
        dict(type='Xavier', layer='Linear', distribution='uniform'),
        dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0)
    ])
