# Copyright (c) OpenMMLab. All rights reserved.
"""Helpers of the checkpoint tools (``tools/model_converters``)."""
import argparse
import re
import sys
from collections import OrderedDict
from typing import Any, Dict, Tuple

import torch
from mmengine.runner import CheckpointLoader

UNSAFE_FLAG = '--unsafe-full-unpickle'


def add_unsafe_full_unpickle(parser: argparse.ArgumentParser) -> None:
    """Add the opt-in for legacy files that weights-only loading refuses."""
    parser.add_argument(
        UNSAFE_FLAG,
        action='store_true',
        help='load the checkpoint with full unpickling if it is refused '
        'otherwise: this runs any code the file holds, so only for a file '
        'you trust (off by default)')


def load_checkpoint_file(path: str, unsafe_full_unpickle: bool = False):
    """Load a checkpoint for a tool, weights-only unless opted out.

    Args:
        path (str): A local path, an http(s) URL or a model-zoo name.
        unsafe_full_unpickle (bool): Unpickle ``path`` fully, running any
            code it holds, with a warning naming it. Defaults to False: the
            plugin's weights-only loader (``utils/safe_checkpoint_loading``).

    Returns:
        dict: The checkpoint.
    """
    if not unsafe_full_unpickle:
        return CheckpointLoader.load_checkpoint(
            path, map_location='cpu', logger='silent')
    print(
        f'WARNING: {UNSAFE_FLAG}: fully unpickling {path}; any code it '
        'holds runs now.',
        file=sys.stderr)
    return torch.load(path, map_location='cpu', weights_only=False)


_PLAIN = (str, int, float, bool, type(None))

_DROP = object()  # marks values plain_meta removes


def _plain(value: Any) -> Any:
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            v = _plain(v)
            if isinstance(k, _PLAIN) and v is not _DROP:
                out[k] = v
        return out
    if isinstance(value, (list, tuple)):
        return [v for v in map(_plain, value) if v is not _DROP]
    return _DROP


def plain_meta(meta: Any) -> dict:
    """Keep only plain data (str/number/bool/None, lists and dicts of them).

    Runner checkpoints carry objects (numpy arrays, history buffers) that
    ``weights_only=True`` refuses without the plugin's allowlist; meta is
    informative, so such entries are dropped rather than converted.

    Args:
        meta: The ``meta`` of a checkpoint.

    Returns:
        dict: The plain part (empty if ``meta`` is not a dict).
    """
    out = _plain(meta)
    return out if isinstance(out, dict) else {}


def save_tensors_only(obj: dict, path: str) -> None:
    """Save ``obj`` and check that it loads with ``weights_only=True``
    without the plugin's allowlist (in this process it is active)."""
    torch.save(obj, path)
    extra = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    if extra:
        raise TypeError(f'{path} holds {extra}: not tensors or plain data')


# the plain-ViT part of mmpretrain's VisionTransformer state dict
_VIT_KEY = re.compile(
    r'^(cls_token|pos_embed|patch_embed\.projection\.(weight|bias)'
    r'|ln1\.(weight|bias)'
    r'|layers\.\d+\.(ln1|ln2|attn\.qkv|attn\.proj|ffn\.layers\.0\.0'
    r'|ffn\.layers\.1)\.(weight|bias)'
    r'|layers\.\d+\.(attn\.gamma1|ffn\.gamma2)\.weight)$')


def vit_state_dict(checkpoint: dict,
                   prefix: str = 'backbone.') -> Tuple[Dict, list]:
    """The plain-ViT tensors of a checkpoint, without the prefix.

    Args:
        checkpoint (dict): A checkpoint (``state_dict`` inside or at the top
            level), with ``prefix`` or already stripped.
        prefix (str): Key prefix of the backbone. Defaults to 'backbone.'.

    Returns:
        tuple: ``(state, skipped)``, the ViT tensors keyed as in
        mmpretrain's ``VisionTransformer`` and the backbone keys left out
        (plugin extras such as ``tap_norms``/``block_norms``, the fc-norm
        ``ln2`` of a fine-tuned model).
    """
    state = checkpoint.get('state_dict', checkpoint)
    if any(k.startswith(prefix) for k in state):
        state = {
            k[len(prefix):]: v
            for k, v in state.items() if k.startswith(prefix)
        }
    if 'patch_embed.projection.weight' not in state:
        raise KeyError('not a ViT checkpoint: no patch_embed.projection.'
                       f'weight (keys look like {list(state)[:3]})')
    if any(k.startswith('pre_norm.') for k in state):
        raise ValueError('ViTs with a pre-norm (pre_norm=True) have no '
                         'counterpart in the target layout')
    vit = OrderedDict((k, v) for k, v in state.items() if _VIT_KEY.match(k))
    skipped = [k for k in state if k not in vit]
    return vit, skipped


def num_layers(state: Dict) -> int:
    """Number of transformer layers in a ViT state dict."""
    ids = {int(k.split('.')[1]) for k in state if k.startswith('layers.')}
    return max(ids) + 1 if ids else 0
