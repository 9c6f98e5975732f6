# BIM + PR-MIM, ViT-L/16 on ImageNet-1k: the BIM ViT-L recipe (K=4 blocks
# of 6 layers, one 2-layer MAE decoder per block, mmpretrain's 400-epoch MAE
# ViT-L schedule) with every block's decoder made partial (throw_ratio 0.5),
# as in the ViT-B config.
_base_ = ['../bim/bim_vit-large-p16_8xb512-amp-coslr-400e_in1k.py']

model = dict(
    neck=dict(
        type='PRMIMPretrainDecoder',
        throw_ratio=0.5,
        sampling='furthest',
        thrown_path='progressive',
        num_waves=2,
        k=4),
    head=dict(type='PRMIMPretrainHead', thrown_loss_weight=1.0))
