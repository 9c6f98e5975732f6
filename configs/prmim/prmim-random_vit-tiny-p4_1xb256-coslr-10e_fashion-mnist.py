# Ablation of the tiny PR-MIM config: the 16 kept masked tokens are drawn
# uniformly at random among the masked ones instead of by furthest sampling
# (the thrown path is unchanged).
# Named prmim-random_* so that tools/benchmarks/fashion_mnist.py, which
# takes the one configs/prmim/prmim_*_fashion-mnist.py, ignores it.
_base_ = ['./prmim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py']

model = dict(neck=dict(sampling='random'))
