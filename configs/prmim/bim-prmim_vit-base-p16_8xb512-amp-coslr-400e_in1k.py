# BIM + PR-MIM, ViT-B/16 on ImageNet-1k: the BIM ViT-B recipe (K=4 blocks
# of 3 layers, one 2-layer MAE decoder per block, mmpretrain's 400-epoch MAE
# schedule) with every block's decoder made partial. 196 patches at
# mask_ratio 0.75 and throw_ratio 0.5: each block's decoder sees [CLS] +
# 49 visible + 49 kept tokens; the 98 thrown ones take the progressive path.
_base_ = ['../bim/bim_vit-base-p16_8xb512-amp-coslr-400e_in1k.py']

# One config shared by every block (built once per block); pass a list of
# K configs to give blocks different throw ratios.
model = dict(
    neck=dict(
        type='PRMIMPretrainDecoder',
        throw_ratio=0.5,
        sampling='furthest',
        thrown_path='progressive',
        num_waves=2,
        k=4),
    head=dict(type='PRMIMPretrainHead', thrown_loss_weight=1.0))
