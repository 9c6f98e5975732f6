# PR-MIM on mmpretrain's MAE ViT-B/16 recipe (ImageNet-1K, 8 x 512, AMP,
# 400 epochs). 196 patches at mask_ratio 0.75 and throw_ratio 0.5: 49
# visible, 49 kept masked and 98 thrown tokens, so the 8-layer decoder sees
# [CLS] + 98 tokens instead of [CLS] + 196.
# Throw-ratio variants: prmim-t025_* (0.25) and prmim-t065_* (0.65).
_base_ = [
    'mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-400e_in1k.py',
    '../_base_/plugin_hooks.py',
]

# plugin modules, registered into mmpretrain's registries
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

model = dict(
    type='PRMIM',
    neck=dict(
        type='PRMIMPretrainDecoder',
        num_patches=196,
        throw_ratio=0.5,  # fraction of all patches kept out of the decoder
        sampling='furthest',  # ablation: 'random'
        thrown_path='progressive',  # ablation: 'none'
        num_waves=2,
        k=4),
    head=dict(type='PRMIMPretrainHead', thrown_loss_weight=1.0))

# mmengine adds `_scope_` to a `collate_fn` inherited from an `mmpretrain::`
# base, which then reaches default_collate as a keyword: declare it anew.
train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))
