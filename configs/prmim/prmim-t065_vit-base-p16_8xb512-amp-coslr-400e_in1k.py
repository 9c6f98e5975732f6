# PR-MIM ViT-B/16, 400 epochs, throw_ratio 0.65 (the 0.5 config otherwise):
# int(196 * 0.65) = 127 thrown, so 49 visible and 20 kept masked tokens; the
# decoder sees [CLS] + 69 tokens instead of [CLS] + 196.
_base_ = ['./prmim_vit-base-p16_8xb512-amp-coslr-400e_in1k.py']

model = dict(neck=dict(throw_ratio=0.65))
