# LocalMIM on the cost-matched ViT-Mini/4 family, 32-px Fashion-MNIST: the
# MAE baseline's encoder (configs/mae/mae_vit-mini-p4_1xb256-coslr-10e_
# fashion-mnist.py) with LocalMIM's ViT-B/16 heads at 1/8 width: four
# one-layer decoders 32 dims wide (ViT-B/16: 256 on a 768-dim encoder, i.e.
# 1/3 of it), 1 head of 32 dims (ViT-B/16: 8 heads of 32).
# Taps after layers [1, 3, 9, 11] (0-based); decoders at x4 / x2 / x1 / x1/2
# of the 8x8 patch grid, i.e. cells of 1 / 2 / 4 / 8 px (= patch_size /
# scale, the cell-to-patch ratios of ViT-B/16). HOG with 9 bins on the single
# normalised channel -> 9-dim targets per cell.
_base_ = ['../mae/mae_vit-mini-p4_1xb256-coslr-10e_fashion-mnist.py']

model = dict(
    type='LocalMIM',
    backbone=dict(type='LocalMIMViT', out_indices=[1, 3, 9, 11]),
    neck=dict(
        _delete_=True,
        type='LocalMIMNeck',
        num_patches=64,
        embed_dim=96,
        out_channels=[9, 9, 9, 9],  # head.in_channels * n_bins per scale
        scales=[4, 2, 1, 0.5],
        decoder_embed_dim=32,
        decoder_depth=1,
        decoder_num_heads=1,
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
        # the Fashion-MNIST choice of the ViT-Tiny config (reason there)
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
