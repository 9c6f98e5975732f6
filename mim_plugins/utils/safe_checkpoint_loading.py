# Copyright (c) OpenMMLab. All rights reserved.
"""Weights-only checkpoint loading: the plugin's one effect beyond registry.

Importing this module (``import mim_plugins`` does) allowlists the data-only
types of runner checkpoints and release files (HistoryBuffer, numpy arrays,
dtypes and scalars, ``argparse.Namespace``) for ``torch.load`` and runs
mmengine's local, http(s) and model-zoo loaders, which (like ``torch.hub``)
unpickle fully, with torch's ``TORCH_FORCE_WEIGHTS_ONLY_LOAD=1``.
"""
import argparse
import contextlib
import functools
import os
import os.path as osp
import pickle
import threading
import traceback
from urllib.parse import urlparse

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner import checkpoint as mmengine_checkpoint

_FORCE = 'TORCH_FORCE_WEIGHTS_ONLY_LOAD'
_NO = 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'  # users set it for mmengine 0.10
_ENVIRON_LOCK = threading.RLock()  # else a concurrent load could clear it


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds objects that only full unpickling builds."""


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file is truncated or otherwise unreadable."""


def _history_buffer_getattr(obj, name: str):
    """``getattr`` for what HistoryBuffer pickles with it: its statistics."""
    if obj is HistoryBuffer and name in ('min', 'max', 'current', 'mean'):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(f'getattr({obj!r}, {name!r}) not allowlisted')


@contextlib.contextmanager
def _force_weights_only():
    """Set torch's switch (and lift a user's opposite one) meanwhile."""
    with _ENVIRON_LOCK:
        saved = {key: os.environ.pop(key, None) for key in (_FORCE, _NO)}
        os.environ[_FORCE] = '1'
        try:
            yield
        finally:
            del os.environ[_FORCE]
            os.environ.update({k: v for k, v in saved.items() if v})


def weights_only(loader):
    """Wrap an mmengine scheme loader: its ``torch.load`` calls (also through
    ``torch.hub``) become weights-only, and its errors name the file."""

    @functools.wraps(loader)  # mmengine logs the loader's name
    def load(filename: str, map_location=None):
        source, cached = filename, None
        if filename.startswith(('http://', 'https://')):  # torch.hub's cache
            cached = osp.join(torch.hub.get_dir(), 'checkpoints',
                              osp.basename(urlparse(filename).path))
            source = f'{filename} (downloaded to {cached})'
        try:
            with _force_weights_only():
                return loader(filename, map_location)
        except pickle.UnpicklingError as err:
            raise UnsafeCheckpointError(
                f'Refused to load {source}: torch.load(weights_only=True) '
                'found objects beyond tensors, containers and allowlisted '
                'data (named in the cause). Nothing from it ran. If you trust '
                'the file, `tools/model_converters/publish_model.py IN OUT '
                '--unsafe-full-unpickle` strips it to tensors: that flag (on '
                'every converter) runs any code the file holds.') from err
        except Exception as err:
            frames = traceback.walk_tb(err.__traceback__)
            if all(
                    f.f_globals.get('__name__') != 'torch.serialization'
                    for f, _ in frames):  # a missing file, a failed download
                raise
            if cached and osp.exists(cached):  # a retry downloads it again
                os.remove(cached)
            raise CorruptCheckpointError(
                f'Cannot read checkpoint {source}: truncated or corrupt? '
                f'({type(err).__name__}: {str(err)[:200]}). Re-save or '
                're-download it.') from err

    return load


try:
    from numpy._core import multiarray
except ImportError:  # numpy < 2
    from numpy.core import multiarray

# Data-only types; the three functions build arrays, scalars, statistics
# (pickle protocol 2 writes b'', e.g. an empty array's data, as bytes()).
SAFE_GLOBALS = [HistoryBuffer, argparse.Namespace, bytes, np.ndarray, np.dtype]
SAFE_GLOBALS += [type(np.dtype(code)) for code in '?bBhHiIlLqQefdgFDGUS']
SAFE_GLOBALS += [
    (fn, f'{core}.multiarray.{fn.__name__}')  # numpy 2 and 1
    for core in ('numpy._core', 'numpy.core')
    for fn in (multiarray._reconstruct, multiarray.scalar)
]
SAFE_GLOBALS.append((_history_buffer_getattr, 'builtins.getattr'))
torch.serialization.add_safe_globals(SAFE_GLOBALS)
for name, prefixes in dict(
        local='',
        http=('http://', 'https://'),
        torchvision=('torchvision://', 'modelzoo://'),
        openmmlab=('open-mmlab://', 'openmmlab://'),
        mmcls='mmcls://').items():
    loader = getattr(mmengine_checkpoint, f'load_from_{name}')
    mmengine_checkpoint.CheckpointLoader.register_scheme(
        prefixes, weights_only(loader), force=True)
