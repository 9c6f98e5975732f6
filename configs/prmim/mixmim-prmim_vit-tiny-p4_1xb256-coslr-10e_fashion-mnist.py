# MixMIM + PR-MIM on ViT-Tiny/4, 32-px Fashion-MNIST: the MixMIM tiny config
# (4x4 mixing cells of 8 px, 8 taken from the partner) with a partial
# decoder in each branch. A branch reconstructs 32 of the 64 tokens;
# throw_ratio 0.25 throws 16 of them, so each branch's decoder sees 48.
_base_ = ['../mixmim/mixmim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py']

model = dict(
    neck=dict(
        type='PRMIMMixMIMPretrainDecoder',
        throw_ratio=0.25,  # < min(mask_ratio, 1 - mask_ratio)
        sampling='furthest',
        thrown_path='progressive',
        num_waves=2,
        k=4),
    head=dict(type='PRMIMMixMIMPretrainHead', thrown_loss_weight=1.0))
