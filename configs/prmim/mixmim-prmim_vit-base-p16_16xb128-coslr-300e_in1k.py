# MixMIM + PR-MIM on a plain ViT-B/16: the MixMIM ViT-B recipe (224 px,
# 32-px mixing cells, ratio 0.5, 8 x 512 dual-branch decoder, MixMIM-B
# 300e schedule) with a partial decoder in each branch. A branch
# reconstructs the 96 or 100 tokens taken by the other image (24 or 25 of
# the 7x7 cells); throw_ratio 0.25 throws 49 of them (about half), so each
# branch's decoder sees 147 of the 196 tokens. The hierarchical MixMIM-B
# twin is mixmim-prmim_mixmim-base_16xb128-coslr-300e_in1k.py.
_base_ = ['../mixmim/mixmim_vit-base-p16_16xb128-coslr-300e_in1k.py']

model = dict(
    neck=dict(
        type='PRMIMMixMIMPretrainDecoder',
        throw_ratio=0.25,  # < min(mask_ratio, 1 - mask_ratio)
        sampling='furthest',
        thrown_path='progressive',
        num_waves=2,
        k=4),
    head=dict(type='PRMIMMixMIMPretrainHead', thrown_loss_weight=1.0))
