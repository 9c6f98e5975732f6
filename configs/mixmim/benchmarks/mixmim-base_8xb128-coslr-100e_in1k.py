# Fine-tune MixMIM-B on ImageNet-1K: mmpretrain's recipe, which is the
# official one (AdamW lr 5e-4 x 1024/256, layer-wise lr decay 0.7, drop path
# 0.1, 100 epochs). Give the pre-trained checkpoint with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = 'mmpretrain::mixmim/benchmarks/mixmim-base_8xb128-coslr-100e_in1k.py'
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

# mmengine adds `_scope_` to a `collate_fn` inherited from an `mmpretrain::`
# base, which then reaches default_collate as a keyword: declare it anew.
val_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))
test_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))
