# Linear probe of one exported BIM ViT-B/16 depth on ImageNet-1k with
# mmpretrain's MAE recipe (90 epochs, frozen backbone, cls token through the
# exported depth's final norm = the block norm BIM trained).
# For depth d in {3, 6, 9, 12} of a [3, 6, 9, 12] run:
#   --cfg-options model.backbone.arch.num_layers=d \
#       model.backbone.frozen_stages=d \
#       model.backbone.init_cfg.checkpoint=OUT_DIR/bim_backbone_depth{d}.pth
_base_ = ('mmpretrain::mae/benchmarks/'
          'vit-base-p16_8xb2048-linear-coslr-90e_in1k.py')
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

num_layers = 12  # depth of the exported backbone
model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,  # replaces the base's arch name
            embed_dims=768,
            num_layers=num_layers,
            num_heads=12,
            feedforward_channels=3072),
        frozen_stages=num_layers))
