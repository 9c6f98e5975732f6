# Copyright (c) OpenMMLab. All rights reserved.
import random
import warnings
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import CheckpointHook, Hook
from mmengine.runner import IterBasedTrainLoop
from mmpretrain.registry import HOOKS

CKPT_KEY = 'random_states'


def get_random_state() -> Dict[str, Any]:
    """The random states of this process as checkpoint-friendly objects.

    Tensors and plain Python values only (the numpy state is split into its
    fields), so the checkpoint also loads with ``weights_only=True``.

    Returns:
        dict: ``torch`` (CPU generator), ``torch_cuda`` (one state per visible
        device, only when CUDA is initialised), ``numpy`` and ``python``.
    """
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    state = dict(
        torch=torch.get_rng_state(),
        numpy=dict(
            name=name,
            keys=torch.from_numpy(keys.astype(np.int64)),
            pos=int(pos),
            has_gauss=int(has_gauss),
            cached_gaussian=float(cached_gaussian)),
        python=random.getstate())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['torch_cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_random_state(state: Dict[str, Any]) -> None:
    """Restore the states returned by :func:`get_random_state`.

    Args:
        state (dict): Random states of one process. A CUDA state is restored
            only when CUDA is available (a checkpoint from a GPU run resumes
            on CPU with its CPU, numpy and Python states).
    """
    # Runner.resume maps the checkpoint to the training device; torch only
    # accepts a CPU ByteTensor as generator state.
    torch.set_rng_state(state['torch'].cpu())
    np_state = state['numpy']
    np.random.set_state(
        (np_state['name'], np_state['keys'].cpu().numpy().astype(np.uint32),
         np_state['pos'], np_state['has_gauss'], np_state['cached_gaussian']))
    random.setstate(_as_python_state(state['python']))
    cuda_states = state.get('torch_cuda')
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states])


def _as_python_state(state) -> tuple:
    # A checkpoint round trip may turn the nested tuples into lists.
    version, internal, gauss_next = state
    return version, tuple(internal), gauss_next


class _RestoreOnFetch:
    """Set saved random states before every batch fetched through it.

    Args:
        iterator: The loop's ``dataloader_iterator``.
        state (dict): States returned by :func:`get_random_state`.
    """

    def __init__(self, iterator, state: Dict[str, Any]) -> None:
        self.iterator = iterator
        self._state = state

    def __iter__(self):
        return self

    def __next__(self):
        set_random_state(self._state)
        return next(self.iterator)

    def __getattr__(self, name: str):
        # anything else (e.g. ``skip_iter``) goes to the loop's iterator
        if name == 'iterator':  # not set yet (copy, unpickling)
            raise AttributeError(name)
        return getattr(self.iterator, name)


def restore_at_next_fetch(loop: IterBasedTrainLoop,
                          state: Dict[str, Any]) -> Callable[[], None]:
    """Set ``state`` before each batch ``loop`` fetches, until undone.

    The one place the hook touches a loop. ``IterBasedTrainLoop.run`` skips
    the batches already trained on after ``before_train_epoch`` and fetches
    the first batch to train on before ``before_train_iter``: no hook point
    lies between the skip, which may draw random numbers (mmengine 0.10.7
    fetches and transforms the skipped batches; the onedl-mmengine fork,
    0.10.11+, advances the sampler through the iterator's ``skip_iter`` and
    may rebuild the dataloader iterator), and that fetch. So the loop's
    ``dataloader_iterator`` attribute (set in ``IterBasedTrainLoop.__init__``
    and read by ``run`` in mmengine 0.10.7 up to 0.11.0rc0 and in the fork)
    is wrapped until the first iteration starts; a test checks that the
    installed loop still fetches through it.

    Args:
        loop (IterBasedTrainLoop): The resumed loop.
        state (dict): States returned by :func:`get_random_state`.

    Returns:
        Callable[[], None]: Puts the loop's own iterator back.
    """
    iterator = getattr(loop, 'dataloader_iterator', None)
    if iterator is None:
        warnings.warn('RandomStateHook: the train loop has no '
                      '`dataloader_iterator`; the random states are set '
                      'before the loop skips the trained batches, so the '
                      'resume is exact only if that skip draws none.')
        set_random_state(state)
        return lambda: None
    loop.dataloader_iterator = _RestoreOnFetch(iterator, state)

    def undo() -> None:
        loop.dataloader_iterator = iterator

    return undo


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Save the random states in checkpoints and restore them on resume.

    mmengine's runner does not save random states: a resumed run re-seeds
    with the run's seed, so masks (torch), data transforms (numpy and
    Python ``random``, e.g. ``RandomResizedCrop``, ``RandomFlip``) and
    dropout after the resume differ from an uninterrupted run. This hook
    stores the torch (CPU and, once initialised, CUDA), numpy and Python
    states in every checkpoint (``checkpoint['random_states']``) and, only
    when the runner *resumes* (training starts past iteration 0 after the
    checkpoint was loaded; ``load_from`` alone restores nothing), sets them
    back at the point of training that matches the save, so the resumed run
    draws the same numbers as an uninterrupted one:

    - ``EpochBasedTrainLoop``: at the start of the first epoch after the
      resume (``before_train_epoch``), i.e. right after the end of the epoch
      that was saved.
    - ``IterBasedTrainLoop``: the loop first skips the already trained
      batches, which may draw random numbers (mmengine 0.10.7 fetches and
      transforms them; the onedl-mmengine fork may only advance the
      sampler). The states are set before every batch fetched until the
      first iteration starts (:func:`restore_at_next_fetch`), so the first
      batch trained on is fetched from them however the loop skipped.

    With ``randomness=dict(seed=..., deterministic=True)``, seeded sampler
    order and ``num_workers=0``, training 2N iterations and training N,
    stopping and resuming for N more give identical losses and weights.

    Limits:

    - The onedl-mmengine fork (0.10.11+) skips through the sampler when it
      has a ``skip`` method (``InfiniteSampler``) and then builds the
      dataloader iterator anew at the first fetch; building it draws one
      number from the torch state after the states are set, so masks after
      such a resume differ. The configs here use ``DefaultSampler``, which
      the fork skips batch by batch on the existing iterator: exact.
    - Mid-epoch checkpoints of ``EpochBasedTrainLoop`` (``CheckpointHook``
      with ``by_epoch=False``) do not resume exactly whatever the random
      state: that loop restarts the saved epoch from its first batch instead
      of skipping the batches already seen. Save at epoch ends, or use
      ``IterBasedTrainLoop``, which skips them.
    - Dataloader workers (``num_workers > 0``) draw their transforms from
      their own states: mmengine's ``worker_init_fn`` seeds worker ``w`` of
      rank ``r`` with ``seed + num_workers * r + w`` (no epoch term) when
      workers start. Non-persistent workers restart every epoch with the
      same seeds in both runs, so resumes stay exact; persistent workers
      (``persistent_workers=True``, as in the Fashion-MNIST configs) start
      once per run, so after a resume they restart from those seeds and
      their transforms differ from an uninterrupted run -- set
      ``persistent_workers=False`` (or ``num_workers=0``) for an exact
      resume. The main-process states (masks, dropout) are restored in
      every case.

    Multi-process (DDP) training: every rank has its own states (mmengine
    seeds rank ``r`` with ``seed + r`` under ``diff_rank_seed``), but only
    rank 0 writes checkpoints. When a ``CheckpointHook`` is about to save,
    all ranks gather their states (``all_gather_object``, one collective per
    checkpoint, at this hook's priority, just before ``CheckpointHook``),
    and the checkpoint holds one entry per rank; on resume every rank
    restores its own entry. If the world size changed, ranks restore
    nothing (the runner's re-seeded states stay) and a warning is logged.

    Args:
        restore (bool): Restore the states when resuming. Set False to keep
            only the saving (e.g. to compare with the runner's re-seeding).
            Defaults to True.
    """

    # After every hook that may draw random numbers in ``after_train_iter``
    # (e.g. LOW ReconstructionVisualizationHook), before the VERY_LOW
    # CheckpointHook.
    priority = 80

    def __init__(self, restore: bool = True) -> None:
        self.restore = restore
        self._gathered: Optional[List[Dict[str, Any]]] = None
        # the loaded checkpoint's states, until training starts
        self._loaded: Optional[List[Dict[str, Any]]] = None
        self._undo_fetch: Optional[Callable[[], None]] = None

    # saving ------------------------------------------------------------
    @staticmethod
    def _checkpoint_hooks(runner) -> List[CheckpointHook]:
        return [h for h in runner.hooks if isinstance(h, CheckpointHook)]

    def _gather_if_saving(self, runner, by_epoch: bool) -> None:
        """Gather every rank's states when a checkpoint follows."""
        if get_world_size() == 1:
            return
        saving = False
        for hook in self._checkpoint_hooks(runner):
            if hook.by_epoch != by_epoch:
                continue
            if by_epoch:
                due = hook.every_n_epochs(runner, hook.interval,
                                          hook.save_begin)
                last = hook.is_last_train_epoch(runner)
            else:
                due = hook.every_n_train_iters(runner, hook.interval,
                                               hook.save_begin)
                last = hook.is_last_train_iter(runner)
            saving = saving or due or (hook.save_last and last)
        if saving:
            self._gathered = all_gather_object(get_random_state())

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        self._gather_if_saving(runner, by_epoch=False)

    def after_train_epoch(self, runner) -> None:
        self._gather_if_saving(runner, by_epoch=True)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if get_world_size() == 1:
            states = [get_random_state()]
        elif self._gathered is not None:
            states = self._gathered
        else:
            # a save outside CheckpointHook's schedule (e.g. called by
            # hand): only this rank's states are known
            runner.logger.warning(
                'RandomStateHook: checkpoint saved outside CheckpointHook; '
                'it holds the random states of rank 0 only.')
            states = [get_random_state()]
        checkpoint[CKPT_KEY] = states
        self._gathered = None

    # restoring ---------------------------------------------------------
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        # Runner.load_checkpoint serves both `load_from` (weights only) and
        # Runner.resume; which one it was shows when training starts.
        if self.restore:
            self._loaded = checkpoint.get(CKPT_KEY) or []

    def _own_state(self, runner,
                   states: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
        """This rank's entry of a checkpoint's states, if usable."""
        if not states:
            runner.logger.warning(
                'RandomStateHook: the checkpoint has no random states (saved '
                'without this hook); the resumed run is re-seeded instead.')
            return None
        world_size = get_world_size()
        if len(states) != world_size:
            runner.logger.warning(
                f'RandomStateHook: the checkpoint has random states of '
                f'{len(states)} process(es), this run has {world_size}; '
                'they are not restored.')
            return None
        return states[get_rank()]

    def before_train_epoch(self, runner) -> None:
        if self._loaded is None:
            return
        states, self._loaded = self._loaded, None
        # Runner.resume sets the loop's iteration from the checkpoint; after
        # `load_from` a new run starts at 0, seeded by the runner.
        if runner.iter == 0:
            return
        state = self._own_state(runner, states)
        if state is None:
            return
        if isinstance(runner.train_loop, IterBasedTrainLoop):
            # the loop skips the trained batches before it fetches the next
            self._undo_fetch = restore_at_next_fetch(runner.train_loop, state)
        else:
            set_random_state(state)

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch=None) -> None:
        if self._undo_fetch is not None:
            # the first batch trained on is fetched
            self._undo_fetch()
            self._undo_fetch = None
