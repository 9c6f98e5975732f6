# MixMIM-B (Swin-B/W14) pre-training, 16 GPUs x 128, 300 epochs: mmpretrain's
# recipe with the official (Sense-X/MixMIM) weight-decay grouping and decoder
# init. mmpretrain's behaviour: `model.neck.init_mode='mmpretrain'` and
# `optim_wrapper.paramwise_cfg` = custom_keys {'ln', 'bias'} (see README).
_base_ = [
    'mmpretrain::mixmim/mixmim_mixmim-base_16xb128-coslr-300e_in1k.py',
    '../_base_/plugin_hooks.py',
]
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

model = dict(
    type='MixMIMPlus',
    # mmpretrain's MixMIMPretrainTransformer, unchanged (arch 'B', ratio 0.5)
    neck=dict(
        type='MixMIMPlusPretrainDecoder',
        num_patches=49,
        in_chans=3,
        encoder_stride=32,
        embed_dim=1024,
        decoder_embed_dim=512,
        decoder_depth=8,
        decoder_num_heads=16,
        init_mode='official'),  # xavier-uniform on every decoder Linear
    head=dict(type='MixMIMPlusPretrainHead', in_channels=3))

# official timm `add_weight_decay`: no decay on any 1-D parameter (every
# norm, including the `norm`-named ones mmpretrain's 'ln' key misses, and
# every bias); weight matrices, the relative position bias tables and the
# decoder mask token keep wd 0.05
optim_wrapper = dict(paramwise_cfg=dict(_delete_=True, flat_decay_mult=0.0))

# drop_last: batch-flip pairing needs an even batch on every device and step;
# collate_fn: mmengine adds `_scope_` to one inherited from an `mmpretrain::`
# base, which then reaches default_collate as a keyword, so declare it anew.
train_dataloader = dict(
    drop_last=True, collate_fn=dict(_delete_=True, type='default_collate'))
