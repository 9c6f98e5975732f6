# LocalMIM: ViT-Tiny/4 on 32-px Fashion-MNIST, one CPU or GPU.
# Same encoder (MAEViT 'deit-tiny', 8x8 patches of 4 px, 1 channel), data and
# schedule structure as the MAE baseline
# (configs/mae/mae_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py).
# Taps after layers [1, 3, 9, 11] (0-based, [1, 3, L-3, L-1]); decoders at
# x4 / x2 / x1 / x1/2 of the 8x8 patch grid, i.e. 32x32 / 16x16 / 8x8 / 4x4
# cells of 1 / 2 / 4 / 8 px (= patch_size / scale; ViT-B/16 uses 4/8/16/32 px
# cells, the same cell-to-patch ratios). HOG with 9 bins on the single
# normalised channel -> 9-dim targets per cell.
_base_ = ['../mae/mae_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py']

model = dict(
    type='LocalMIM',
    backbone=dict(type='LocalMIMViT', out_indices=[1, 3, 9, 11]),
    neck=dict(
        _delete_=True,
        type='LocalMIMNeck',
        num_patches=64,
        embed_dim=192,
        out_channels=[9, 9, 9, 9],  # head.in_channels * n_bins per scale
        scales=[4, 2, 1, 0.5],
        decoder_embed_dim=256,
        decoder_depth=1,
        decoder_num_heads=8,
        mlp_ratio=4.),
    head=dict(
        _delete_=True,
        type='LocalMIMHead',
        patch_size=4,
        scales=[4, 2, 1, 0.5],
        target='hog',
        in_channels=1,
        n_bins=9,
        hog_bias=False,
        # Sobel responses as pixel differences, not the official single
        # convolution: the same filter, but on the flat background the
        # convolution's round-off becomes, after the per-cell norm, a full
        # bin-0 entry (the target of a horizontal edge) where the difference
        # form gives zeros. First 2000 padded training images (python
        # tools/analysis_tools/hog_gradient_forms.py <this config> --pad 2):
        # 48.4% of the 1-px cells differ (41.8% / 33.9% / 19.6% of the
        # 2 / 4 / 8-px ones), 99.9% of them flat; 99.7% of the flat 1-px
        # cells get a full bin-0 entry from the convolution.
        hog_gradient='difference',
        loss=dict(type='PixelReconstructionLoss', criterion='L2'),
        loss_weights=[1., 1., 1., 1.]))

# LocalMIM recipe: blr 2e-4 (MAE: 1.5e-4), with the same x10 as the MAE
# baseline for the 10-epoch schedule. Weight decay as the official code
# (timm's add_weight_decay): none on 1-D parameters (norms, the tap and
# decoder norms included) and biases; the class and mask tokens are decayed
# (the MAE baseline exempts them: deleted).
optim_wrapper = dict(
    optimizer=dict(lr=2e-4 * 256 / 256 * 10),
    paramwise_cfg=dict(
        _delete_=True, norm_decay_mult=0.0, bias_decay_mult=0.0))
