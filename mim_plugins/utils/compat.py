# Copyright (c) OpenMMLab. All rights reserved.
"""Compatibility shims for the pinned OpenMMLab stack on torch >= 2.6.

Every shim here works around a defect of an installed package *at run time*
(no installed file is edited), is applied once by :func:`apply_all` when
``mim_plugins`` is imported (configs pull it in via ``custom_imports``), and is
tested in ``tests/test_utils/test_compat.py``.

1. **Checkpoint loading** (``torch.load`` defaults to ``weights_only=True``
   since torch 2.6, mmengine 0.10.7 calls it without the argument): runner
   checkpoints pickle ``HistoryBuffer`` and numpy arrays, so ``--resume``,
   ``load_from`` and ``init_cfg=dict(type='Pretrained')`` all fail.  Local
   checkpoints (written by the user's own runs) are loaded with
   ``weights_only=False`` -- what mmengine's main branch does since #1670.
   Checkpoints fetched over http(s) are loaded with ``weights_only=True``: a
   downloaded pickle is never executed (mmengine's ``load_url`` passes
   ``weights_only=False`` through ``torch.hub``).
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
import os
import os.path as osp
import warnings
from contextlib import contextmanager
from typing import Optional, Union

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
def load_local_checkpoint(filename: str,
                          map_location: Optional[Union[str, dict]] = None):
    """Load a local checkpoint written by an mmengine runner.

    Local files are trusted (the user's own runs), so full unpickling is
    allowed; files fetched from the network go through
    :func:`load_http_checkpoint` instead.

    Args:
        filename (str): Local path of the checkpoint.
        map_location (str | dict, optional): Same as :func:`torch.load`.

    Returns:
        dict: The loaded checkpoint.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return torch.load(filename, map_location=map_location, weights_only=False)


def load_http_checkpoint(filename: str,
                         map_location: Optional[Union[str, dict]] = None,
                         model_dir: Optional[str] = None,
                         progress: bool = False):
    """Download a checkpoint and load it with ``weights_only=True``.

    Only tensors and plain containers are accepted, so a malicious pickle in
    a downloaded file is refused instead of executed.  Runner checkpoints
    carrying a message hub must be stripped first
    (``tools/model_converters/publish_model.py``).

    Args:
        filename (str): http(s) URL of the checkpoint.
        map_location (str | dict, optional): Same as :func:`torch.load`.
        model_dir (str, optional): Download directory. Defaults to torch
            hub's checkpoint directory.
        progress (bool): Whether to show a progress bar. Defaults to False.

    Returns:
        dict: The loaded checkpoint.
    """
    from mmengine.dist import barrier, get_dist_info
    rank, world_size = get_dist_info()

    def _load():
        return torch.hub.load_state_dict_from_url(
            filename,
            model_dir=model_dir,
            map_location=map_location,
            progress=progress,
            weights_only=True)

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
    _patch_collate_scope()
    _patch_amp()
    _APPLIED = True
