# MAE baseline: ViT-Tiny/4 on 32-px Fashion-MNIST, one CPU or GPU.
_base_ = [
    '../_base_/models/mae_vit-tiny-p4.py',
    '../_base_/datasets/fashion-mnist_bs256_mae.py',
    '../_base_/schedules/fashion-mnist_mae-adamw-coslr-10e.py',
    '../_base_/default_runtime.py',
]

default_hooks = dict(logger=dict(interval=20))
