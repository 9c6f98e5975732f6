# Fashion-MNIST for masked image modeling on CPU.
# The 28-px gray images are padded by 2 px of background on every side to
# 32 px (native resolution kept, no interpolation; 32 / patch 4 = 8x8 patches)
# and kept single-channel (in_channels=1 throughout the model).
# The folder is `data_root` of fashion-mnist_root.py (`make setup` unpacks
# the Debian package `dataset-fashion-mnist` into data/fashion-mnist;
# mmpretrain's FashionMNIST reads uncompressed IDX files).
_base_ = ['./fashion-mnist_root.py']
dataset_type = 'FashionMNIST'
data_root = {{_base_.data_root}}

data_preprocessor = dict(
    type='SelfSupDataPreprocessor',
    mean=[72.94],  # 0.2860 * 255
    std=[90.02],  # 0.3530 * 255
    to_rgb=False)

train_pipeline = [
    # pad 2 px each side; a 32-px crop of the 32-px image is the identity
    dict(type='RandomCrop', crop_size=32, padding=2),
    dict(
        type='RandomResizedCrop',
        scale=32,
        crop_ratio_range=(0.35, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs')
]

train_dataloader = dict(
    batch_size=256,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type=dataset_type,
        data_prefix=data_root,
        test_mode=False,
        download=False,
        pipeline=train_pipeline))

# Frozen-feature evaluation (kNN / linear probe) used by tools/run_demo.py
# and the benchmark tools: un-augmented, padded images.
test_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=2),
    dict(type='PackInputs')
]
feature_eval_data = dict(
    train=dict(
        type=dataset_type,
        data_prefix=data_root,
        test_mode=False,
        download=False,
        pipeline=test_pipeline),
    test=dict(
        type=dataset_type,
        data_prefix=data_root,
        test_mode=True,
        download=False,
        pipeline=test_pipeline))
