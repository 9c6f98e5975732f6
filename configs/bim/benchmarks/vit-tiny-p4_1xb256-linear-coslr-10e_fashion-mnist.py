# Linear probe of one exported BIM depth of the ViT-Tiny/4 on Fashion-MNIST,
# with the MAE baseline's linear-probe recipe ([CLS] token through the
# exported depth's final norm = the block norm BIM trained). Export the depths
# with
#   python tools/model_converters/bim_extract_backbones.py CKPT OUT_DIR
# then, for depth d in {3, 6, 9, 12}:
#   --cfg-options model.backbone.arch.num_layers=d \
#       model.backbone.frozen_stages=d \
#       model.backbone.init_cfg.checkpoint=OUT_DIR/bim_backbone_depth{d}.pth
_base_ = [
    '../../mae/benchmarks/vit-tiny-p4_1xb256-linear-coslr-10e_fashion-mnist.py'
]

num_layers = 12  # depth of the exported backbone
model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,  # replaces the base's arch name
            embed_dims=192,
            num_layers=num_layers,
            num_heads=3,
            feedforward_channels=768),
        frozen_stages=num_layers))
