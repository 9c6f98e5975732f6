# MixMIM + PR-MIM on the hierarchical MixMIM-B (Swin-B/W14): the MixMIM-B
# recipe (224 px, ratio 0.5, 8 x 512 dual-branch decoder on the 7x7 grid of
# 32-px tokens, 300e schedule) with a partial decoder in each branch. Every
# decoder token is a whole mixing cell: a branch reconstructs the 24 or 25
# cells taken by the other image; throw_ratio 0.25 throws 12 of them (about
# half), so each branch's decoder sees 37 of the 49 tokens.
_base_ = ['../mixmim/mixmim_mixmim-base_16xb128-coslr-300e_in1k.py']

model = dict(
    neck=dict(
        type='PRMIMMixMIMPretrainDecoder',
        throw_ratio=0.25,  # < 24/49, the fewest cells a branch reconstructs
        sampling='furthest',
        thrown_path='progressive',
        num_waves=2,
        k=4),
    head=dict(type='PRMIMMixMIMPretrainHead', thrown_loss_weight=1.0))
