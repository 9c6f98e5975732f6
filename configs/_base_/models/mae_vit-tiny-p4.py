# MAE with a ViT-Tiny/4 encoder for 32-px single-channel images (64 patches).
model = dict(
    type='MAE',
    backbone=dict(
        type='MAEViT',
        arch='deit-tiny',  # 192 dims, 12 layers, 3 heads
        img_size=32,
        patch_size=4,
        patch_cfg=dict(in_channels=1),
        mask_ratio=0.75),
    neck=dict(
        type='MAEPretrainDecoder',
        num_patches=64,
        patch_size=4,
        in_chans=1,
        embed_dim=192,
        decoder_embed_dim=128,
        decoder_depth=2,
        decoder_num_heads=4,
        mlp_ratio=4.),
    head=dict(
        type='MAEPretrainHead',
        norm_pix=True,
        patch_size=4,
        in_channels=1,
        loss=dict(type='PixelReconstructionLoss', criterion='L2')),
    init_cfg=[
        dict(type='Xavier', layer='Linear', distribution='uniform'),
        dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0)
    ])
