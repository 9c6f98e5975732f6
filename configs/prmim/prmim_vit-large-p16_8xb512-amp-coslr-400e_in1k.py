# PR-MIM on mmpretrain's MAE ViT-L/16 recipe (ImageNet-1K, 8 x 512, AMP,
# 400 epochs): the ViT-B config's partial decoder (throw_ratio 0.5) on the
# 24-layer, 1024-wide encoder; the decoder stays 8 x 512 as in MAE ViT-L.
_base_ = [
    'mmpretrain::mae/mae_vit-large-p16_8xb512-amp-coslr-400e_in1k.py',
    '../_base_/plugin_hooks.py',
]

custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

model = dict(
    type='PRMIM',
    neck=dict(
        type='PRMIMPretrainDecoder',
        num_patches=196,
        throw_ratio=0.5,
        sampling='furthest',
        thrown_path='progressive',
        num_waves=2,
        k=4),
    head=dict(type='PRMIMPretrainHead', thrown_loss_weight=1.0))

# mmengine adds `_scope_` to a `collate_fn` inherited from an `mmpretrain::`
# base, which then reaches default_collate as a keyword: declare it anew.
train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))
