# Copyright (c) OpenMMLab. All rights reserved.
"""Compatibility shims for the pinned OpenMMLab stack on torch >= 2.6.

Every shim here works around a defect of an installed package *at run time*
(no installed file is edited), is applied once by :func:`apply_all` when
``mim_plugins`` is imported (configs pull it in via ``custom_imports``), and is
tested in ``tests/test_utils/test_compat.py``.

1. **Checkpoint loading** (``torch.load`` defaults to ``weights_only=True``
   since torch 2.6, mmengine 0.10.7 calls it without the argument, and runner
   checkpoints pickle ``HistoryBuffer`` and numpy arrays, so ``--resume``,
   ``load_from`` and ``init_cfg=dict(type='Pretrained')`` all fail).  The
   mmengine ``CheckpointLoader`` schemes are replaced by:

   - files under the current run's ``work_dir`` (its own checkpoints:
     ``--resume``, auto-resume) are fully unpickled.  The Runner's
     ``load_checkpoint`` (``load_from``/``resume``) and
     ``_init_model_weights`` (``init_cfg``) are wrapped to enter
     :func:`trusted_checkpoint_dir` with ``runner.work_dir`` (a context
     variable, so nothing outlives the call);
   - every other local file and everything fetched over http(s) (also
     through ``open-mmlab://``, ``torchvision://``, ``mmcls://``) is loaded
     with ``weights_only=True`` plus the few data-only globals of runner
     checkpoints (:func:`runner_checkpoint_globals`, applied with the
     ``safe_globals`` context, not globally): other runs' checkpoints load,
     a pickle that would build anything else raises
     :class:`UnsafeCheckpointError` naming the file and how to proceed, never
     falling back to full unpickling;
   - a truncated or corrupt file raises :class:`CorruptCheckpointError`
     naming it (a corrupt download is also removed from the cache).
2. **collate_fn ``_scope_`` leak**: a config inheriting an ``mmpretrain::``
   base gets ``_scope_`` injected into ``train_dataloader.collate_fn``, which
   :meth:`Runner.build_dataloader` forwards as a keyword to
   ``default_collate`` (``TypeError`` at the first batch).  The shim drops the
   key before the runner sees it (collate functions are scope-free).
3. **``--amp`` without an accelerator**: mmengine's ``AmpOptimWrapper``
   asserts a GPU at construction.  ``AmpOptimWrapper`` is shadowed in
   mmpretrain's ``OPTIM_WRAPPERS`` registry (a child of mmengine's) by a
   factory that builds the real one when CUDA is available and otherwise a
   :class:`CPUAmpOptimWrapper` (bf16 autocast, no loss scaling needed), with a
   warning.  It covers both this project's ``tools/train.py --amp`` and
   mmpretrain's own (``mim train mmpretrain ... --amp``).
"""
import copy
import functools
import os
import os.path as osp
import pickle
import re
import struct
import warnings
import zipfile
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from typing import Optional, Union
from urllib.parse import urlparse

import mmengine.runner.checkpoint as mmengine_checkpoint
import torch
from mmengine.config import Config, ConfigDict
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.runner import Runner
from mmengine.runner.checkpoint import CheckpointLoader
from mmpretrain.registry import MODEL_WRAPPERS, OPTIM_WRAPPERS

_APPLIED = False


# --------------------------------------------------------------------------
# 1. Checkpoint loading
# --------------------------------------------------------------------------
class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds objects that ``weights_only=True`` refuses."""


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file is truncated or otherwise unreadable."""


# The work_dir of the run that is loading a checkpoint (set by the Runner
# methods wrapped in :func:`_patch_runner_work_dir`); files under it are the
# run's own and may be fully unpickled.
_RUN_WORK_DIR: ContextVar[Optional[str]] = ContextVar(
    'mim_plugins_run_work_dir', default=None)

# HistoryBuffer statistics pickled as ``getattr(HistoryBuffer, name)``.
_HISTORY_BUFFER_STATISTICS = ('min', 'max', 'current', 'mean')

# Messages of torch's weights-only unpickler when it refuses (rather than
# fails to parse) a pickle.
_REFUSAL_PATTERNS = ('Unsupported global', 'is blocked',
                     'unrecognized function', 'Can only create new object',
                     'Can only build', 'must be imported to load',
                     'is not allowlisted')


@contextmanager
def trusted_checkpoint_dir(work_dir: Optional[str]):
    """Treat checkpoints under ``work_dir`` as the current run's own files.

    Inside the context, local checkpoints under ``work_dir`` are fully
    unpickled and all others are loaded with ``weights_only=True``.  The
    Runner enters it with its ``work_dir`` while it loads checkpoints
    (``load_from``, ``resume`` and ``init_cfg``); scripts loading their own
    files outside a Runner may use it too.

    Args:
        work_dir (str, optional): The run's work directory; None trusts no
            directory.
    """
    token = _RUN_WORK_DIR.set(
        osp.realpath(osp.expanduser(work_dir)) if work_dir else None)
    try:
        yield
    finally:
        _RUN_WORK_DIR.reset(token)


def is_in_run_work_dir(filename: str) -> bool:
    """Whether ``filename`` (symlinks resolved) is under the run's work_dir.

    Args:
        filename (str): Local path of a checkpoint.

    Returns:
        bool: False when no run is loading (see
        :func:`trusted_checkpoint_dir`).
    """
    work_dir = _RUN_WORK_DIR.get()
    if work_dir is None:
        return False
    path = osp.realpath(osp.expanduser(filename))
    try:
        return osp.commonpath([path, work_dir]) == work_dir
    except ValueError:  # e.g. different drives
        return False


def _history_buffer_getattr(obj, name: str):
    """``getattr`` restricted to the statistics methods of HistoryBuffer.

    A runner checkpoint pickles ``HistoryBuffer._statistics_methods`` as
    ``getattr(HistoryBuffer, 'min')`` etc.; the builtin ``getattr`` could
    reach any attribute of an allowlisted object, so it is replaced by this.
    """
    from mmengine.logging import HistoryBuffer
    if obj is HistoryBuffer and name in _HISTORY_BUFFER_STATISTICS:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'getattr({obj!r}, {name!r}) is not allowlisted')


@functools.lru_cache(maxsize=1)
def runner_checkpoint_globals() -> tuple:
    """Globals that mmengine runner checkpoints need beyond torch's defaults.

    The message hub pickles :class:`~mmengine.logging.HistoryBuffer` objects
    (numpy arrays, their statistics methods) and numpy scalars.  None of these
    can run code: they only rebuild arrays and dtypes from bytes.  numpy 1.x
    names (``numpy.core``) map to the installed functions so that checkpoints
    written with either major version load.

    Returns:
        tuple: Entries for :func:`torch.serialization.safe_globals`.
    """
    import numpy as np
    from mmengine.logging import HistoryBuffer
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
    # Unpickled dtypes are instances of per-dtype classes (numpy >= 1.25);
    # object dtype is left out on purpose.
    for code in '?bBhHiIlLqQefdgFDGUS':
        dtype_cls = type(np.dtype(code))
        if dtype_cls is not np.dtype:
            entries.append(dtype_cls)
    return tuple(entries)


def _unpickler_detail(err: BaseException) -> str:
    """The unpickler's own message, without torch's advice to re-run with
    ``weights_only=False`` (which this module deliberately never does)."""
    message = re.sub(r'\x1b\[[0-9;]*m', '', str(err))
    match = re.search(r'WeightsUnpickler error:\s*(.*?)\s*(Check the docu|$)',
                      message, re.S)
    return (match.group(1) if match else message).strip().rstrip('.')


def _is_corruption(err: BaseException) -> bool:
    if isinstance(err, RuntimeError):
        # miniz's messages for a missing or damaged zip directory
        return 'PytorchStreamReader' in str(err) or 'zip archive' in str(err)
    return isinstance(err,
                      (EOFError, KeyError, UnicodeDecodeError, struct.error,
                       zipfile.BadZipFile, pickle.UnpicklingError))


def _torch_load(path: str, map_location, weights_only: bool, source: str,
                reason: str, advice: str):
    """``torch.load`` with the runner allowlist and clear errors.

    Args:
        path (str): Local file to read.
        map_location: Same as :func:`torch.load`.
        weights_only (bool): Whether to restrict unpickling.
        source (str): How the error names the checkpoint (path or URL).
        reason (str): Why ``weights_only=True`` was used, for the error.
        advice (str): How to proceed with a refused file, for the error.
    """
    try:
        if not weights_only:
            return torch.load(
                path, map_location=map_location, weights_only=False)
        # Only add what is missing: leaving the context removes its entries,
        # which must not drop globals the user allowlisted beforehand.
        present = set(torch.serialization.get_safe_globals())
        missing = [g for g in runner_checkpoint_globals() if g not in present]
        with torch.serialization.safe_globals(missing):
            return torch.load(
                path, map_location=map_location, weights_only=True)
    except Exception as err:
        detail = _unpickler_detail(err)
        if weights_only and isinstance(err, pickle.UnpicklingError) and any(
                p in detail for p in _REFUSAL_PATTERNS):
            raise UnsafeCheckpointError(
                f'Refused to load {source}: it was loaded with '
                f'torch.load(weights_only=True) because {reason}, and it '
                'holds objects that only full unpickling (which can run '
                f'arbitrary code) builds: {detail}. Nothing from it was '
                f'executed. {advice}') from None
        if _is_corruption(err):
            first_line = (detail.splitlines() or [''])[0][:200]
            raise CorruptCheckpointError(
                f'Checkpoint {source} is truncated or corrupt '
                f'({type(err).__name__}: {first_line}). Re-save or '
                're-download it.') from err
        raise


def load_local_checkpoint(filename: str,
                          map_location: Optional[Union[str, dict]] = None):
    """Load a local checkpoint; only the running job's own files are trusted.

    Files under the current run's ``work_dir`` (its own checkpoints, e.g.
    ``--resume`` and auto-resume) are fully unpickled.  Any other file is
    loaded with ``weights_only=True`` plus :func:`runner_checkpoint_globals`,
    which accepts mmengine runner checkpoints of other runs but refuses
    pickles that would build other objects.

    Args:
        filename (str): Local path of the checkpoint.
        map_location (str | dict, optional): Same as :func:`torch.load`.

    Returns:
        dict: The loaded checkpoint.

    Raises:
        UnsafeCheckpointError: The file is outside the work_dir and holds
            objects ``weights_only=True`` refuses.
        CorruptCheckpointError: The file is truncated or unreadable.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    work_dir = _RUN_WORK_DIR.get()
    reason = ("it is outside the run's work_dir "
              f"({work_dir or 'no run is loading'})")
    advice = ('If you trust the file, strip it to tensors with `python '
              f'tools/model_converters/publish_model.py {filename} OUT.pth` '
              "and load OUT.pth, or copy it into the run's work_dir.")
    return _torch_load(
        filename,
        map_location,
        weights_only=not is_in_run_work_dir(filename),
        source=filename,
        reason=reason,
        advice=advice)


def load_http_checkpoint(filename: str,
                         map_location: Optional[Union[str, dict]] = None,
                         model_dir: Optional[str] = None,
                         progress: bool = False):
    """Download a checkpoint and load it with ``weights_only=True``.

    Only tensors, plain containers and :func:`runner_checkpoint_globals`
    are accepted, so a malicious pickle in a downloaded file is refused
    instead of executed.  A truncated or corrupt download is removed from
    the cache, so that the next attempt downloads it again.

    Args:
        filename (str): http(s) URL of the checkpoint.
        map_location (str | dict, optional): Same as :func:`torch.load`.
        model_dir (str, optional): Download directory. Defaults to torch
            hub's checkpoint directory.
        progress (bool): Whether to show a progress bar. Defaults to False.

    Returns:
        dict: The loaded checkpoint.

    Raises:
        UnsafeCheckpointError: The file holds objects ``weights_only=True``
            refuses.
        CorruptCheckpointError: The downloaded file is truncated or
            unreadable.
    """
    from mmengine.dist import barrier, get_dist_info
    rank, world_size = get_dist_info()
    model_dir = model_dir or osp.join(torch.hub.get_dir(), 'checkpoints')
    cached = osp.join(model_dir, osp.basename(urlparse(filename).path))

    def _load():
        if not osp.exists(cached):
            os.makedirs(model_dir, exist_ok=True)
            torch.hub.download_url_to_file(filename, cached, progress=progress)
        try:
            return _torch_load(
                cached,
                map_location,
                weights_only=True,
                source=f'{filename} (downloaded to {cached})',
                reason='files from http(s) are never fully unpickled',
                advice='If you trust the file, strip the downloaded copy with '
                '`python tools/model_converters/publish_model.py '
                f'{cached} OUT.pth` and load OUT.pth.')
        except CorruptCheckpointError as err:
            with suppress(FileNotFoundError):
                os.remove(cached)
            raise CorruptCheckpointError(
                f'{err} The cached copy was removed, the next attempt '
                'downloads it again.') from err.__cause__

    # Download once on rank 0, the other ranks read the cached file.
    if rank == 0:
        checkpoint = _load()
    if world_size > 1:
        barrier()
        if rank > 0:
            checkpoint = _load()
    return checkpoint


def _patch_checkpoint_loaders() -> None:
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_local_checkpoint, force=True)
    CheckpointLoader.register_scheme(
        prefixes=('http://', 'https://'),
        loader=load_http_checkpoint,
        force=True)
    # open-mmlab://, torchvision:// and mmcls:// download through this
    # module-level function (torch.hub with weights_only=False).
    mmengine_checkpoint.load_from_http = load_http_checkpoint


def _patch_runner_work_dir() -> None:
    """Make the Runner's checkpoint loading know the run's work_dir."""
    # load_checkpoint serves load_from and resume (auto-resume included);
    # _init_model_weights serves init_cfg=dict(type='Pretrained').
    for name in ('load_checkpoint', '_init_model_weights'):
        original = getattr(Runner, name)

        def method(self, *args, _original=original, **kwargs):
            with trusted_checkpoint_dir(self.work_dir):
                return _original(self, *args, **kwargs)

        functools.update_wrapper(method, original)
        setattr(Runner, name, method)


# --------------------------------------------------------------------------
# 2. collate_fn `_scope_` leak
# --------------------------------------------------------------------------
def strip_collate_scope(dataloader_cfg):
    """Return ``dataloader_cfg`` without ``_scope_`` in its ``collate_fn``.

    Args:
        dataloader_cfg (dict | Any): A dataloader config or a built
            dataloader (returned unchanged).

    Returns:
        dict | Any: The config, copied if it had to be changed.
    """
    if not isinstance(dataloader_cfg, dict):
        return dataloader_cfg
    collate = dataloader_cfg.get('collate_fn')
    if not isinstance(collate, dict) or '_scope_' not in collate:
        return dataloader_cfg
    dataloader_cfg = copy.copy(dataloader_cfg)
    collate = dict(collate)
    collate.pop('_scope_')
    dataloader_cfg['collate_fn'] = collate
    return dataloader_cfg


def _patch_collate_scope() -> None:
    original = Runner.build_dataloader

    def build_dataloader(dataloader, seed=None, diff_rank_seed=False):
        return original(
            strip_collate_scope(dataloader),
            seed=seed,
            diff_rank_seed=diff_rank_seed)

    build_dataloader.__wrapped__ = original
    Runner.build_dataloader = staticmethod(build_dataloader)


# --------------------------------------------------------------------------
# 3. AMP without an accelerator
# --------------------------------------------------------------------------
@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """Mixed-precision optimizer wrapper for CPU: bf16 autocast.

    bfloat16 has float32's exponent range, so no loss scaling is needed; the
    parameters, gradients and optimizer state stay in float32.

    Args:
        dtype (str): Autocast dtype, only ``'bfloat16'`` is supported on CPU.
            Defaults to ``'bfloat16'``.
        loss_scale: Accepted for config compatibility with
            ``AmpOptimWrapper`` and ignored.
        **kwargs: Arguments of :class:`mmengine.optim.OptimWrapper`.
    """

    def __init__(self,
                 dtype: Optional[str] = 'bfloat16',
                 loss_scale=None,
                 **kwargs) -> None:
        if dtype not in (None, 'bfloat16', torch.bfloat16):
            raise ValueError(
                'optim_wrapper.dtype must be "bfloat16" for AMP on CPU, '
                f'got {dtype!r} (float16 autocast needs a GPU).')
        super().__init__(**kwargs)
        self.cast_dtype = torch.bfloat16

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        """Run the forward under bf16 CPU autocast."""
        with super().optim_context(model), torch.autocast(
                device_type='cpu', dtype=self.cast_dtype):
            yield


def build_amp_optim_wrapper(**kwargs) -> OptimWrapper:
    """Build mmengine's ``AmpOptimWrapper``, or a CPU bf16 one without GPU.

    Registered as ``AmpOptimWrapper`` in mmpretrain's registry so that
    ``--amp`` (which sets ``optim_wrapper.type='AmpOptimWrapper'``) works on a
    CPU-only machine instead of failing on mmengine's device assertion.
    """
    if torch.cuda.is_available():
        return AmpOptimWrapper(**kwargs)
    warnings.warn('AMP requested without CUDA: training with bfloat16 '
                  'autocast on CPU (CPUAmpOptimWrapper).')
    dtype = kwargs.pop('dtype', None)
    return CPUAmpOptimWrapper(dtype=dtype or 'bfloat16', **kwargs)


def _patch_amp() -> None:
    OPTIM_WRAPPERS.register_module(
        name='AmpOptimWrapper', module=build_amp_optim_wrapper, force=True)


# --------------------------------------------------------------------------
# Distributed training without CUDA (used by tools/train.py)
# --------------------------------------------------------------------------
def setup_cpu_distributed(cfg: Config) -> Config:
    """Make a distributed config runnable on CPU processes.

    When CUDA is absent, mmengine's defaults cannot work: ``init_dist`` calls
    ``torch.cuda.set_device`` whatever the backend, and DDP is built with
    ``device_ids=[LOCAL_RANK]``, which CPU modules reject.  So, for the
    ``pytorch`` launcher (``torchrun``/``tools/dist_train.sh``), this joins
    the process group with ``gloo`` here (the Runner then skips its own
    ``init_dist``) and builds DDP with ``device_ids=None``.

    Args:
        cfg (Config): The training config, modified in place.

    Returns:
        Config: The same config.
    """
    launcher = cfg.get('launcher', 'none')
    if torch.cuda.is_available() or launcher == 'none':
        return cfg
    env_cfg = cfg.setdefault('env_cfg', ConfigDict())
    dist_cfg = env_cfg.setdefault('dist_cfg', ConfigDict())
    dist_cfg['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or ConfigDict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper_type = MODEL_WRAPPERS.get(
        wrapper.get('type', 'MMDistributedDataParallel'))
    if isinstance(wrapper_type, type) and issubclass(
            wrapper_type, torch.nn.parallel.DistributedDataParallel):
        wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper

    import torch.distributed as torch_dist
    if launcher == 'pytorch' and not torch_dist.is_initialized():
        kwargs = {k: v for k, v in dist_cfg.items() if k != 'backend'}
        torch_dist.init_process_group(
            backend='gloo',
            rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']),
            **kwargs)
    return cfg


def apply_all() -> None:
    """Apply every shim once (idempotent)."""
    global _APPLIED
    if _APPLIED:
        return
    _patch_checkpoint_loaders()
    _patch_runner_work_dir()
    _patch_collate_scope()
    _patch_amp()
    _APPLIED = True
