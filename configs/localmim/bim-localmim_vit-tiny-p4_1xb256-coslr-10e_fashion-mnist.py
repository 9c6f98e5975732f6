# BIM + LocalMIM on the cost-matched ViT-Tiny/4 family, 32-px Fashion-MNIST:
# BIM's ViT-Tiny/4 config (K=4 blocks of 3 layers, one AdamW step per block)
# with every block's MAE decoder replaced by the LocalMIM ViT-Tiny/4
# config's decoder (1 layer, 256 wide, 8 heads). Block 1 predicts the HOG of
# 1-px cells (x4 of the 8x8 patch grid), block 2 of 2-px, block 3 of 4-px,
# block 4 of 8-px cells: the cell-to-patch ratios of ViT-B/16. HOG with 9
# bins on the single normalised channel, in the LocalMIM config's
# difference form.
_base_ = ['../bim/bim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py']

model = dict(
    neck=[
        dict(
            type='LocalMIMDecoder',
            scale=scale,
            out_channels=9,  # 1 channel x 9 bins
            num_patches=64,
            embed_dim=192,
            decoder_embed_dim=256,
            decoder_depth=1,
            decoder_num_heads=8,
            mlp_ratio=4.) for scale in (4, 2, 1, 0.5)
    ],
    head=[
        dict(
            type='LocalMIMHead',
            patch_size=4,
            scales=[scale],
            target='hog',
            in_channels=1,
            n_bins=9,
            hog_bias=False,
            hog_gradient='difference',
            loss=dict(type='PixelReconstructionLoss', criterion='L2'))
        for scale in (4, 2, 1, 0.5)
    ])
