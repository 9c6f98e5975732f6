# Copyright (c) OpenMMLab. All rights reserved.
"""Prepare a checkpoint for release, OpenMMLab style.

Drops the optimizer, scheduler and message-hub state and everything that is
not a tensor or plain data, checks that the result loads with
``torch.load(weights_only=True)``, and names it
``{name}_{YYYYMMDD}-{sha256[:8]}.pth``. The input is loaded weights-only like
every checkpoint; a trusted legacy file that holds other objects can be
published with ``--unsafe-full-unpickle`` (full unpickling runs any code in
the file), and the result then loads weights-only everywhere.

Example:
    python tools/model_converters/publish_model.py \
        work_dirs/prmim/epoch_400.pth \
        prmim_vit-base-p16_8xb512-amp-coslr-400e_in1k.pth
"""
import argparse
import datetime
import hashlib
import os
import os.path as osp

from mim_plugins.utils.checkpoint import (add_unsafe_full_unpickle,
                                          load_checkpoint_file, plain_meta,
                                          save_tensors_only)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('in_file', help='runner checkpoint')
    parser.add_argument(
        'out_file', help='output name; the date and hash are appended')
    parser.add_argument(
        '--date', default=None, help='YYYYMMDD (default: today)')
    add_unsafe_full_unpickle(parser)
    return parser.parse_args()


def sha256sum(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def publish(in_file: str,
            out_file: str,
            date: str = None,
            unsafe_full_unpickle: bool = False) -> str:
    """Write the release file and return its final path."""
    ckpt = load_checkpoint_file(in_file, unsafe_full_unpickle)
    state = ckpt.get('state_dict', ckpt)
    release = dict(state_dict=state, meta=plain_meta(ckpt.get('meta', {})))
    stem = osp.splitext(out_file)[0]
    tmp = stem + '.tmp.pth'
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    save_tensors_only(release, tmp)
    date = date or datetime.date.today().strftime('%Y%m%d')
    final = f'{stem}_{date}-{sha256sum(tmp)[:8]}.pth'
    os.replace(tmp, final)
    return final


def main() -> None:
    args = parse_args()
    print(
        publish(args.in_file, args.out_file, args.date,
                args.unsafe_full_unpickle))


if __name__ == '__main__':
    main()
