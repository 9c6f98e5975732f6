# Fine-tune a PR-MIM ViT-Tiny/4 (MAEViT encoder; the partial decoder is
# ignored) on 32-px Fashion-MNIST with the MAE baseline's fine-tune recipe
# (layer-wise lr decay, label smoothing, drop path). Give the pre-trained
# checkpoint with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = ['../../mae/benchmarks/vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py']
