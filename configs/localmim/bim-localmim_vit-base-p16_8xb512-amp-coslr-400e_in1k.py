# BIM + LocalMIM on ViT-B/16: BIM's ViT-B/16 config (K=4 blocks of 3 layers,
# one optimizer step per block, 8 x 512 images, MAE's 400-epoch recipe) with
# every block's MAE decoder replaced by one LocalMIM decoder: 1 layer, 256
# wide, 8 heads, predicting the HOG (9 bins per colour channel) of its own
# scale. The scale follows depth as in LocalMIM: block 1 (layers 1-3)
# predicts 4-px cells (x4 of the 14x14 patch grid), block 2 8-px, block 3
# 16-px, block 4 32-px (x1/2). Each block is trained by its own loss only.
_base_ = ['../bim/bim_vit-base-p16_8xb512-amp-coslr-400e_in1k.py']

model = dict(
    neck=[
        dict(
            type='LocalMIMDecoder',
            scale=scale,
            out_channels=27,  # 3 colour channels x 9 bins
            num_patches=196,
            embed_dim=768,
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
            n_bins=9,
            hog_bias=False,
            loss=dict(type='PixelReconstructionLoss', criterion='L2'))
        for scale in (4, 2, 1, 0.5)
    ])
