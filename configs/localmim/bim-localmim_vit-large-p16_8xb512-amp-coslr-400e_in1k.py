# BIM + LocalMIM on ViT-L/16: BIM's ViT-L/16 config (K=4 blocks of 6 layers,
# one optimizer step per block) with every block's MAE decoder replaced by
# one LocalMIM decoder as in LocalMIM's ViT-L/16 recipe: 1 layer, 256 wide,
# 8 heads, HOG with 18 bins per colour channel and the frozen random Sobel
# bias. Block 1 (layers 1-6) predicts 4-px cells, block 2 8-px, block 3
# 16-px, block 4 32-px.
_base_ = ['../bim/bim_vit-large-p16_8xb512-amp-coslr-400e_in1k.py']

model = dict(
    neck=[
        dict(
            type='LocalMIMDecoder',
            scale=scale,
            out_channels=54,  # 3 colour channels x 18 bins
            num_patches=196,
            embed_dim=1024,
            decoder_embed_dim=256,
            decoder_depth=1,
            decoder_num_heads=8,
            mlp_ratio=4.) for scale in (4, 2, 1, 0.5)
    ],
    head=[
        dict(
            type='LocalMIMHead',
            patch_size=16,
            scales=[scale],
            target='hog',
            in_channels=3,
            n_bins=18,
            hog_bias=True,
            loss=dict(type='PixelReconstructionLoss', criterion='L2'))
        for scale in (4, 2, 1, 0.5)
    ])
