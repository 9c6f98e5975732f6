# MAE baseline of the cost-matched family: ViT-Mini/4 (ViT-B/16's MAE at 1/8
# width: 96-dim encoder, 64-dim x 8-layer decoder) on 32-px Fashion-MNIST,
# one CPU or GPU. The BIM, PR-MIM, LocalMIM and MixMIM *_vit-mini-p4_*
# configs keep their ViT-B/16 FLOPs and memory ratios to this config
# (docs/experiments/equal_budget.md).
_base_ = [
    '../_base_/models/mae_vit-mini-p4.py',
    '../_base_/datasets/fashion-mnist_bs256_mae.py',
    '../_base_/schedules/fashion-mnist_mae-adamw-coslr-10e.py',
    '../_base_/default_runtime.py',
]

default_hooks = dict(logger=dict(interval=20))
