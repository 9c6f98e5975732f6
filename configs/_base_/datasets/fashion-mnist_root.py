# The Fashion-MNIST folder of every Fashion-MNIST config (pre-training,
# fine-tuning, linear probing): the four unpacked IDX files
# (train-images-idx3-ubyte, ...); a relative path is relative to the working
# directory.  Two ways to move every split of a config at once:
# - `--cfg-options data_root=DIR` with this project's tools/train.py and
#   tools/test.py (also `mim train/test mim_plugins`, dist_train.sh): they
#   point each `data_prefix` still holding `default_data_root` at `data_root`;
# - the environment variable FMNIST_ROOT=DIR, read by mmengine when the config
#   is loaded, for any tool (e.g. `mim train mmpretrain`).
data_root = '{{$FMNIST_ROOT:data/fashion-mnist}}'
default_data_root = data_root
