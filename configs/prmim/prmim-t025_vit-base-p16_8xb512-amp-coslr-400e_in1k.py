# PR-MIM ViT-B/16, 400 epochs, throw_ratio 0.25 (the 0.5 config otherwise):
# 49 visible, 98 kept masked and 49 thrown tokens, so the decoder sees
# [CLS] + 147 tokens instead of [CLS] + 196.
_base_ = ['./prmim_vit-base-p16_8xb512-amp-coslr-400e_in1k.py']

model = dict(neck=dict(throw_ratio=0.25))
