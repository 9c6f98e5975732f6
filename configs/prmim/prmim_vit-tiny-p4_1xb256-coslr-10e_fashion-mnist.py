# PR-MIM: ViT-Tiny/4 on 32-px Fashion-MNIST, one CPU or GPU.
# Same encoder, decoder weights, data and schedule as the MAE baseline
# (configs/mae/mae_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py); only the
# decoder input and the loss change. 64 patches at mask_ratio 0.75 and
# throw_ratio 0.5: 16 visible, 16 kept masked and 32 thrown tokens, so the
# decoder transformer sees [CLS] + 32 tokens instead of [CLS] + 64.
_base_ = ['../mae/mae_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py']

model = dict(
    type='PRMIM',
    neck=dict(
        type='PRMIMPretrainDecoder',
        throw_ratio=0.5,  # fraction of all patches kept out of the decoder
        sampling='furthest',  # ablation: 'random'
        thrown_path='progressive',  # ablation: 'none'
        num_waves=2,
        k=4),
    head=dict(type='PRMIMPretrainHead', thrown_loss_weight=1.0))
