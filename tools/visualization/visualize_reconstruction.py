# Copyright (c) OpenMMLab. All rights reserved.
"""Draw what a MIM model reconstructs from masked images.

For each image: the original, what the encoder saw (masked), the
reconstruction and the reconstruction pasted into the visible patches, plus
method-specific panels (see ``mim_plugins.visualization``).

Example:
    python tools/visualization/visualize_reconstruction.py \
        configs/mae/mae_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py \
        work_dirs/demo/epoch_3.pth demo/images --out work_dirs/vis
"""
import argparse
import os
import os.path as osp

import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import load_checkpoint
from PIL import Image

import mim_plugins  # noqa: F401
from mim_plugins.visualization import reconstruct, save_reconstruction_grid

IMAGE_EXTS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='pre-training config')
    parser.add_argument('checkpoint', help='checkpoint of that config')
    parser.add_argument('images', help='an image file or a folder of images')
    parser.add_argument('--out', default='work_dirs/reconstructions')
    parser.add_argument('--seed', type=int, default=0, help='mask seed')
    parser.add_argument('--device', default='cpu')
    return parser.parse_args()


def list_images(path: str) -> list:
    if osp.isdir(path):
        files = sorted(
            osp.join(path, f) for f in os.listdir(path)
            if f.lower().endswith(IMAGE_EXTS))
    else:
        files = [path]
    if not files:
        raise FileNotFoundError(f'no image ({", ".join(IMAGE_EXTS)}) in '
                                f'{path}')
    return files


def load_image(path: str, channels: int, size: int) -> torch.Tensor:
    """Read an image as a (C, H, W) float tensor of 0-255 values."""
    with Image.open(path) as img:
        img = img.convert('L' if channels == 1 else 'RGB')
        img = img.resize((size, size), Image.BICUBIC)
        array = np.asarray(img, dtype=np.float32)
    if array.ndim == 2:
        array = array[..., None]
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def main() -> None:
    args = parse_args()
    cfg = Config.fromfile(args.config)
    pre = cfg.get('data_preprocessor') or cfg.model.get('data_preprocessor')
    mean, std = list(pre['mean']), list(pre['std'])
    size = cfg.model.backbone.get('img_size', 224)
    from mmpretrain.registry import MODELS
    model_cfg = cfg.model.copy()
    model_cfg.setdefault('data_preprocessor', pre)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(model_cfg)
    load_checkpoint(model, args.checkpoint, map_location='cpu')
    model.to(args.device).eval()

    os.makedirs(args.out, exist_ok=True)
    mean_t = torch.tensor(mean).view(-1, 1, 1)
    std_t = torch.tensor(std).view(-1, 1, 1)
    for path in list_images(args.images):
        x = (load_image(path, len(mean), size) - mean_t) / std_t
        panels = reconstruct(model, x[None].to(args.device), seed=args.seed)
        name = osp.splitext(osp.basename(path))[0]
        out = save_reconstruction_grid(
            panels,
            osp.join(args.out, f'{name}_reconstruction.png'),
            mean=mean,
            std=std,
            num_images=1,
            transpose=True)
        print(out)


if __name__ == '__main__':
    main()
