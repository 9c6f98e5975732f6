# Copyright (c) OpenMMLab. All rights reserved.
"""Safe checkpoint loading: the plugin's only effect beyond registration.

Importing this module (``import mim_plugins`` does) changes two things:

1. torch's weights-only unpickler also accepts the data-only types of runner
   checkpoints (HistoryBuffer, numpy arrays, dtypes, scalars), so they load.
2. mmengine's local, http(s) and model-zoo checkpoint schemes load with
   ``weights_only=True``: mmengine 0.10.7 and ``torch.hub`` unpickle fully.

A file that needs anything else raises :class:`UnsafeCheckpointError` before
any of it runs; an unreadable one raises :class:`CorruptCheckpointError`.
Both name the file.
"""
import os
import os.path as osp
import pickle
from typing import Callable, List, Optional, Tuple, Union
from urllib.parse import urlparse

import numpy as np
import torch
from mmengine.dist import barrier, get_dist_info
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import (CheckpointLoader, _get_mmengine_home,
                                        _process_mmcls_checkpoint,
                                        get_deprecated_model_names,
                                        get_external_models, get_mmcls_models,
                                        get_torchvision_models)

MapLocation = Optional[Union[str, dict, Callable]]


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds objects that only full unpickling builds."""


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file is truncated or otherwise unreadable."""


def _history_buffer_getattr(obj, name: str):
    """``getattr`` limited to the statistics methods of HistoryBuffer.

    A HistoryBuffer pickles its statistics as ``getattr(HistoryBuffer, 'min')``
    and so on; the builtin ``getattr`` could reach any attribute.
    """
    if obj is HistoryBuffer and name in ('min', 'max', 'current', 'mean'):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'getattr({obj!r}, {name!r}) is not allowlisted')


def runner_checkpoint_globals() -> List[Union[Callable, Tuple[Callable, str]]]:
    """The data-only globals of mmengine runner checkpoints.

    Returns:
        list: Entries for :func:`torch.serialization.add_safe_globals`. Both
        numpy 1.x (``numpy.core``) and 2.x names, object dtype left out.
    """
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    entries = [
        HistoryBuffer, np.ndarray, np.dtype,
        (_history_buffer_getattr, 'builtins.getattr')
    ]
    for core in ('numpy._core', 'numpy.core'):
        entries.append(
            (multiarray._reconstruct, f'{core}.multiarray._reconstruct'))
        entries.append((multiarray.scalar, f'{core}.multiarray.scalar'))
    entries.extend(type(np.dtype(code)) for code in '?bBhHiIlLqQefdgFDGUS')
    return entries


def _load(path: str, map_location: MapLocation, source: str):
    """``torch.load(weights_only=True)`` with errors that name ``source``."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise UnsafeCheckpointError(
            f'Refused to load {source}: torch.load(weights_only=True) found '
            'objects other than tensors, plain containers and runner-'
            'checkpoint data (the cause above names them). Nothing from it '
            'ran. If you trust the file, strip it to tensors with '
            '`python tools/model_converters/publish_model.py IN OUT`.'
        ) from err
    except (RuntimeError, EOFError, OSError, KeyError, ValueError) as err:
        # torch 2.14 reports a truncated zip as OSError, garbage as KeyError.
        raise CorruptCheckpointError(
            f'Cannot read checkpoint {source}: truncated or corrupt? '
            f'({type(err).__name__}: {str(err)[:200]}). Re-save or '
            're-download it.') from err


def load_from_local_safely(filename: str, map_location: MapLocation = None):
    """Load a local checkpoint (any file, the run's own included).

    Args:
        filename (str): Path of the checkpoint.
        map_location: Same as :func:`torch.load`.

    Returns:
        dict: The loaded checkpoint.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return _load(filename, map_location, filename)


def load_from_http_safely(filename: str,
                          map_location: MapLocation = None,
                          model_dir: Optional[str] = None,
                          progress: bool = False):
    """Download a checkpoint into torch hub's cache and load it safely.

    Rank 0 downloads first, the other ranks then read its copy; a corrupt
    copy is deleted so that the next attempt downloads it again.

    Args:
        filename (str): http(s) URL of the checkpoint.
        map_location: Same as :func:`torch.load`.
        model_dir (str, optional): Cache directory. Defaults to torch hub's
            ``checkpoints`` directory.
        progress (bool): Whether to show a progress bar. Defaults to False.

    Returns:
        dict: The loaded checkpoint.
    """
    model_dir = model_dir or osp.join(torch.hub.get_dir(), 'checkpoints')
    cached = osp.join(model_dir, osp.basename(urlparse(filename).path))

    def download_and_load():
        if not osp.exists(cached):
            os.makedirs(model_dir, exist_ok=True)
            torch.hub.download_url_to_file(filename, cached, progress=progress)
        try:
            return _load(cached, map_location,
                         f'{filename} (downloaded to {cached})')
        except CorruptCheckpointError:
            if osp.exists(cached):
                os.remove(cached)
            raise

    rank, world_size = get_dist_info()
    if rank == 0:
        checkpoint = download_and_load()
    if world_size > 1:
        barrier()
        if rank > 0:
            checkpoint = download_and_load()
    return checkpoint


def load_from_model_zoo_safely(filename: str,
                               map_location: MapLocation = None):
    """Resolve a ``torchvision://``, ``open-mmlab://`` or ``mmcls://`` name
    as mmengine does, then load it with the loaders above.

    Args:
        filename (str): The model-zoo name with its prefix.
        map_location: Same as :func:`torch.load`.

    Returns:
        dict: The loaded checkpoint.
    """
    prefix, name = filename.split('://', 1)
    if prefix in ('torchvision', 'modelzoo'):
        url = get_torchvision_models()[name]
    elif prefix == 'mmcls':
        url = get_mmcls_models()[name]
    else:
        name = get_deprecated_model_names().get(name, name)
        url = get_external_models()[name]
    if url.startswith(('http://', 'https://')):
        checkpoint = load_from_http_safely(url, map_location)
    else:
        checkpoint = load_from_local_safely(
            osp.join(_get_mmengine_home(), url), map_location)
    return _process_mmcls_checkpoint(checkpoint) \
        if prefix == 'mmcls' else checkpoint


torch.serialization.add_safe_globals(runner_checkpoint_globals())
CheckpointLoader.register_scheme('', load_from_local_safely, force=True)
CheckpointLoader.register_scheme(('http://', 'https://'),
                                 load_from_http_safely,
                                 force=True)
CheckpointLoader.register_scheme(('torchvision://', 'modelzoo://',
                                  'open-mmlab://', 'openmmlab://', 'mmcls://'),
                                 load_from_model_zoo_safely,
                                 force=True)
