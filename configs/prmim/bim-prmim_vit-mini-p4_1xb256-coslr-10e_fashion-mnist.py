# BIM + PR-MIM on the cost-matched ViT-Mini/4 family: the BIM config (K=4
# blocks of 3 layers, one 2-layer decoder per block) with every block's
# decoder made partial, as the ViT-B/16 BIM + PR-MIM config. 64 patches at
# mask_ratio 0.75 and throw_ratio 0.5: each block's decoder sees [CLS] + 16
# visible + 16 kept tokens; 32 are thrown.
_base_ = ['../bim/bim_vit-mini-p4_1xb256-coslr-10e_fashion-mnist.py']

model = dict(
    neck=dict(
        type='PRMIMPretrainDecoder',
        throw_ratio=0.5,
        sampling='furthest',
        thrown_path='progressive',
        num_waves=2,
        k=4),
    head=dict(type='PRMIMPretrainHead', thrown_loss_weight=1.0))
