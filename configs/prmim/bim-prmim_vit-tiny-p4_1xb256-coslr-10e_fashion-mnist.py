# BIM + PR-MIM: the BIM ViT-Tiny/4 Fashion-MNIST config (K=4 blocks of 3
# layers, one MAE decoder per block) with every block's decoder made
# partial. 64 patches at mask_ratio 0.75 and throw_ratio 0.5: each block's
# decoder sees [CLS] + 16 visible + 16 kept tokens; 32 are thrown.
_base_ = ['../bim/bim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py']

model = dict(
    neck=dict(
        type='PRMIMPretrainDecoder',
        throw_ratio=0.5,
        sampling='furthest',
        thrown_path='progressive',
        num_waves=2,
        k=4),
    head=dict(type='PRMIMPretrainHead', thrown_loss_weight=1.0))
