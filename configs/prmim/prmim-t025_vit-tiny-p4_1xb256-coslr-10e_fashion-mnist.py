# Throw-ratio sweep of the tiny PR-MIM config: throw_ratio 0.25, i.e. 16
# visible, 32 kept masked and 16 thrown tokens (decoder: [CLS] + 48 tokens).
_base_ = ['./prmim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py']

model = dict(neck=dict(throw_ratio=0.25))
