# PR-MIM on the cost-matched ViT-Mini/4 family, 32-px Fashion-MNIST: the MAE
# baseline (configs/mae/mae_vit-mini-p4_1xb256-coslr-10e_fashion-mnist.py)
# with the partial decoder of PR-MIM's ViT-B/16 config. 64 patches at
# mask_ratio 0.75 and throw_ratio 0.5: 16 visible, 16 kept masked and 32
# thrown tokens, so the 8-layer decoder sees [CLS] + 32 tokens instead of
# [CLS] + 64.
_base_ = ['../mae/mae_vit-mini-p4_1xb256-coslr-10e_fashion-mnist.py']

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
