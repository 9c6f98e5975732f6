# The Fashion-MNIST folder of every Fashion-MNIST config (pre-training,
# fine-tuning, linear probing): the four unpacked IDX files
# (train-images-idx3-ubyte, ...); a relative path is relative to the working
# directory.  `--cfg-options data_root=DIR` moves every split of a config:
# when the Runner is built, mim_plugins points each `data_prefix` that still
# holds `default_data_root` at `data_root` (mim_plugins/datasets/data_root.py).
data_root = 'data/fashion-mnist'
default_data_root = data_root
