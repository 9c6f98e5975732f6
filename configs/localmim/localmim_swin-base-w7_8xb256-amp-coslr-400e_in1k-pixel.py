# LocalMIM Swin-B, normalised-pixel targets (official "Pixel" variant):
# per-cell norm_pix of 8 / 16 / 32 / 32-px cells, 192 / 768 / 3072 / 3072
# dims.
_base_ = './localmim_swin-base-w7_8xb256-amp-coslr-400e_in1k.py'

model = dict(
    neck=dict(out_channels=[192, 768, 3072, 3072]),
    head=dict(target='pixel', norm_pix=True))
