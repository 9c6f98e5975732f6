# Copyright (c) OpenMMLab. All rights reserved.
"""Helpers of the checkpoint tools (``tools/model_converters``)."""
import re
from collections import OrderedDict
from typing import Any, Dict, Tuple

import torch


def load_trusted(path: str) -> dict:
    """Load a local checkpoint the user produced (full unpickling).

    Only for the user's own files given on the command line; anything
    downloaded goes through :func:`mim_plugins.utils.load_from_http_safely`.
    """
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
    ``weights_only=True`` refuses; meta is informative, so such entries are
    dropped rather than converted.

    Args:
        meta: The ``meta`` of a checkpoint.

    Returns:
        dict: The plain part (empty if ``meta`` is not a dict).
    """
    out = _plain(meta)
    return out if isinstance(out, dict) else {}


def save_tensors_only(obj: dict, path: str) -> None:
    """Save ``obj`` and check that it loads with ``weights_only=True``."""
    torch.save(obj, path)
    torch.load(path, map_location='cpu', weights_only=True)


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
