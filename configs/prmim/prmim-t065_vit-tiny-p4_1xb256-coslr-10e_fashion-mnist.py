# Throw-ratio sweep of the tiny PR-MIM config: throw_ratio 0.65, i.e.
# int(64 * 0.65) = 41 thrown, 16 visible and 7 kept masked tokens (decoder:
# [CLS] + 23 tokens).
_base_ = ['./prmim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py']

model = dict(neck=dict(throw_ratio=0.65))
