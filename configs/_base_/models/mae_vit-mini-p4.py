# MAE with a ViT-Mini/4 encoder for 32-px single-channel images (64 patches):
# ViT-B/16's MAE at 1/8 of every width. Encoder 96 dims (768 / 8), 12
# layers, 3 heads; decoder 64 dims (512 / 8, i.e. 2/3 of the encoder as at
# ViT-B), 8 layers, 2 heads (ViT-B's decoder heads are 32 wide too). The
# methods' configs built on it keep ViT-B/16's training-cost ratios to MAE
# (docs/experiments/equal_budget.md, tests/test_configs_cost_ratios.py).
model = dict(
    type='MAE',
    backbone=dict(
        type='MAEViT',
        arch=dict(
            embed_dims=96,
            num_layers=12,
            num_heads=3,
            feedforward_channels=384),
        img_size=32,
        patch_size=4,
        patch_cfg=dict(in_channels=1),
        mask_ratio=0.75),
    neck=dict(
        type='MAEPretrainDecoder',
        num_patches=64,
        patch_size=4,
        in_chans=1,
        embed_dim=96,
        decoder_embed_dim=64,
        decoder_depth=8,
        decoder_num_heads=2,
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
