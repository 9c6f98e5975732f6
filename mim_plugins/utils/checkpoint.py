# Copyright (c) OpenMMLab. All rights reserved.
"""Helpers of the checkpoint tools (``tools/model_converters``)."""
from typing import Any

import torch


def load_trusted(path: str) -> dict:
    """Load a local checkpoint the user produced (full unpickling).

    Only for the user's own files given on the command line; anything
    downloaded goes through :func:`mim_plugins.utils.load_http_checkpoint`.
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
