# Ablation of the tiny PR-MIM config: plain partial reconstruction. The
# decoder is the same partial decoder (throw_ratio 0.5, furthest sampling),
# but the 32 thrown tokens get no prediction and no loss.
# Named prmim-nothrown_* so that tools/benchmarks/fashion_mnist.py, which
# takes the one configs/prmim/prmim_*_fashion-mnist.py, ignores it.
_base_ = ['./prmim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py']

model = dict(neck=dict(thrown_path='none'))
