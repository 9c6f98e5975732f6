# MixMIM on a plain ViT-L/16: the ViT-B config (224 px, 32-px mixing cells,
# ratio 0.5, 8 x 512 dual-branch decoder, MixMIM-B 300e schedule) with the
# 24-layer, 1024-wide encoder.
_base_ = './mixmim_vit-base-p16_16xb128-coslr-300e_in1k.py'

model = dict(backbone=dict(arch='l'), neck=dict(embed_dim=1024))
