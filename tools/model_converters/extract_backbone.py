# Copyright (c) OpenMMLab. All rights reserved.
"""Extract the backbone of a pre-training checkpoint, tensors only.

The output ``{'state_dict': {'backbone.*': tensor}, 'meta': {...}}`` loads
with ``torch.load(weights_only=True)`` (so also from a URL through the
plugin's safe http loader) and plugs into fine-tune, mmdet and mmseg configs
with ``init_cfg=dict(type='Pretrained', checkpoint=OUT, prefix='backbone.')``.
``--strip-prefix`` writes bare keys instead (``init_cfg`` without prefix).

Example:
    python tools/model_converters/extract_backbone.py \
        work_dirs/demo/epoch_3.pth work_dirs/demo/backbone.pth
"""
import argparse
import os
import os.path as osp

import torch

from mim_plugins.utils.checkpoint import (add_unsafe_full_unpickle,
                                          load_checkpoint_file, plain_meta,
                                          save_tensors_only)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('checkpoint', help='pre-training checkpoint')
    parser.add_argument('out', help='output file')
    parser.add_argument(
        '--prefix', default='backbone.', help='key prefix of the backbone')
    parser.add_argument(
        '--strip-prefix',
        action='store_true',
        help='write keys without the prefix')
    add_unsafe_full_unpickle(parser)
    return parser.parse_args()


def extract_backbone(checkpoint: dict,
                     prefix: str = 'backbone.',
                     strip_prefix: bool = False) -> dict:
    """The backbone tensors of a checkpoint dict and its plain meta."""
    state = checkpoint.get('state_dict', checkpoint)
    backbone = {
        (k[len(prefix):] if strip_prefix else k): v
        for k, v in state.items() if k.startswith(prefix)
    }
    if not backbone:
        raise KeyError(f'no key starts with {prefix!r}; keys look like '
                       f'{list(state)[:3]}')
    return dict(
        state_dict=backbone, meta=plain_meta(checkpoint.get('meta', {})))


def main() -> None:
    args = parse_args()
    ckpt = load_checkpoint_file(args.checkpoint, args.unsafe_full_unpickle)
    out = extract_backbone(ckpt, args.prefix, args.strip_prefix)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    save_tensors_only(out, args.out)
    n = sum(v.numel() for v in out['state_dict'].values())
    print(f'{args.out}: {len(out["state_dict"])} tensors, {n / 1e6:.2f} M '
          'parameters')


if __name__ == '__main__':
    torch.set_grad_enabled(False)
    main()
