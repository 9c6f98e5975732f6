# Linear probe of a LocalMIM ViT-B/16 on ImageNet-1k with mmpretrain's MAE
# recipe: frozen backbone (final norm included), [CLS] token ->
# ClsBatchNormNeck -> linear head, LARS lr 6.4, 90 epochs, 8 x 2048 images.
# LocalMIM reports fine-tuning only; this is the common MIM probe. The tap
# norms and decoders of the pre-training checkpoint are ignored; give it with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
# (or a converted official checkpoint,
# tools/model_converters/localmim_to_mmpretrain.py --out-format backbone).
_base_ = ('mmpretrain::mae/benchmarks/'
          'vit-base-p16_8xb2048-linear-coslr-90e_in1k.py')
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)
