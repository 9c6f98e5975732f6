# Fine-tune a pre-trained ViT-Mini/4 (the cost-matched family of
# configs/*/*_vit-mini-p4_*_fashion-mnist.py: 96 dims, 12 layers, 3 heads) on
# 32-px Fashion-MNIST with the recipe of the ViT-Tiny/4 fine-tune config.
# The backbone keys of every method's ViT-Mini/4 checkpoint match it, e.g.
# the demo's work_dirs/demo/<method>/final.pth:
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = ['./vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py']

model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=96,
            num_layers=12,
            num_heads=3,
            feedforward_channels=384)),
    head=dict(in_channels=96))
