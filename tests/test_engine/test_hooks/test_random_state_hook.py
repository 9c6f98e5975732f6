# Copyright (c) OpenMMLab. All rights reserved.
import io
import random
from types import SimpleNamespace
from unittest.mock import MagicMock

import numpy as np
import pytest
import torch
from mmengine.hooks import CheckpointHook
from mmengine.runner import IterBasedTrainLoop
from mmengine.runner.loops import _InfiniteDataloaderIterator
from mmpretrain.registry import HOOKS

import mim_plugins.engine.hooks.random_state_hook as rsh
from mim_plugins.engine.hooks import RandomStateHook


def draw() -> tuple:
    """One number from each generator the hook covers."""
    return (torch.rand(3), np.random.rand(3), random.random())


def seed_all(seed: int) -> None:
    """Seed every generator the hook covers."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def same_draws(a: tuple, b: tuple) -> bool:
    return (torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])
            and a[2] == b[2])


def make_runner(resume: bool = True, train_loop=None) -> SimpleNamespace:
    """A runner after loading a checkpoint: ``Runner.resume`` sets the
    loop's iteration from it, ``load_from`` leaves a new run at 0."""
    train_loop = train_loop or SimpleNamespace(iter=3 if resume else 0)
    return SimpleNamespace(
        iter=train_loop.iter,
        logger=MagicMock(),
        hooks=[],
        train_loop=train_loop)


def saved_checkpoint(hook: RandomStateHook, runner) -> dict:
    """A checkpoint written by the hook, through a torch.save round trip."""
    checkpoint = {}
    hook.before_save_checkpoint(runner, checkpoint)
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    buffer.seek(0)
    # the states are tensors and plain values: weights_only loading works
    return torch.load(buffer, weights_only=True)


def test_registered():
    assert HOOKS.get('RandomStateHook') is RandomStateHook


def test_state_round_trip():
    seed_all(1)
    np.random.randn()  # numpy caches a second gaussian: saved too
    state = rsh.get_random_state()
    expected = draw() + (np.random.randn(), )
    draw()
    rsh.set_random_state(state)
    got = draw() + (np.random.randn(), )
    assert same_draws(got, expected)
    assert got[3] == expected[3]


def test_restores_on_resume_at_epoch_start():
    hook, runner = RandomStateHook(), make_runner()
    seed_all(0)
    checkpoint = saved_checkpoint(hook, runner)
    assert len(checkpoint['random_states']) == 1
    expected = draw()

    seed_all(0)  # what the runner's re-seeding does
    hook.after_load_checkpoint(runner, checkpoint)
    draw()  # e.g. building and loading draw numbers before training
    hook.before_train_epoch(runner)
    assert same_draws(draw(), expected)
    # restored once only
    draw()
    hook.before_train_epoch(runner)
    assert not same_draws(draw(), expected)


def test_load_from_without_resume_restores_nothing():
    hook = RandomStateHook()
    checkpoint = saved_checkpoint(hook, make_runner())
    saved = draw()
    runner = make_runner(resume=False)
    hook.after_load_checkpoint(runner, checkpoint)
    hook.before_train_epoch(runner)
    assert not same_draws(draw(), saved)
    # and not later either
    seed_all(0)
    hook.before_train_epoch(make_runner())
    assert not same_draws(draw(), saved)
    runner.logger.warning.assert_not_called()


def test_restore_false_and_missing_states():
    runner = make_runner()
    hook = RandomStateHook(restore=False)
    checkpoint = saved_checkpoint(hook, runner)
    saved = draw()
    hook.after_load_checkpoint(runner, checkpoint)
    hook.before_train_epoch(runner)
    assert not same_draws(draw(), saved)
    hook = RandomStateHook()
    hook.after_load_checkpoint(runner, {'meta': {}})
    hook.before_train_epoch(runner)
    runner.logger.warning.assert_called_once()
    assert 'no random states' in runner.logger.warning.call_args[0][0]


class FakeIterator:
    """A loop's data iterator: every fetched batch draws random numbers (as
    data transforms do); ``skip_iter`` advances without loading, drawing
    other numbers (as a rebuilt dataloader iterator does)."""

    def __init__(self) -> None:
        self.fetched = 0

    def __iter__(self):
        return self

    def __next__(self) -> tuple:
        self.fetched += 1
        return draw()

    def skip_iter(self, num_iters: int) -> None:
        self.fetched += num_iters
        torch.rand(1)


class FakeIterLoop(IterBasedTrainLoop):
    """``IterBasedTrainLoop``'s resume, skipping as mmengine versions do.

    ``fetch``: fetch (and transform) the trained batches (mmengine 0.10.7);
    ``skip_iter``: advance the iterator without loading them (later
    versions); ``none``: do not skip (``fast_forward_on_resume=True``).
    """

    def __init__(self, iter: int, skip: str = 'fetch') -> None:
        # the parts of the loop the hook and this resume use
        self._iter = iter
        self.skip = skip
        self.dataloader_iterator = FakeIterator()

    def resume_and_fetch(self, hook: RandomStateHook, runner) -> tuple:
        hook.before_train_epoch(runner)
        if self.skip == 'fetch':
            for _ in range(self.iter):
                next(self.dataloader_iterator)
        elif self.skip == 'skip_iter':
            self.dataloader_iterator.skip_iter(self.iter)
        batch = next(self.dataloader_iterator)
        hook.before_train_iter(runner, 0, batch)
        return batch


@pytest.mark.parametrize('skip', ['fetch', 'skip_iter', 'none'])
def test_iter_based_restores_after_skip(skip):
    hook = RandomStateHook()
    checkpoint = saved_checkpoint(hook, make_runner())
    expected = draw()  # the batch after the checkpoint
    loop = FakeIterLoop(iter=5, skip=skip)
    original = loop.dataloader_iterator
    runner = make_runner(train_loop=loop)
    hook.after_load_checkpoint(runner, checkpoint)
    assert same_draws(loop.resume_and_fetch(hook, runner), expected)
    # the loop has its own iterator back once training starts, and it
    # advanced as the loop asked
    assert loop.dataloader_iterator is original
    assert original.fetched == (1 if skip == 'none' else 6)
    # restored once only
    assert not same_draws(next(loop.dataloader_iterator), expected)


def test_loop_without_data_iterator_warns():
    """A loop without ``dataloader_iterator`` gets the states at once, with
    a warning that the resume may not be exact."""
    seed_all(3)
    state = rsh.get_random_state()
    expected = draw()
    loop = SimpleNamespace()
    with pytest.warns(UserWarning, match='dataloader_iterator'):
        undo = rsh.restore_at_next_fetch(loop, state)
    assert same_draws(draw(), expected)
    undo()
    assert not hasattr(loop, 'dataloader_iterator')


def test_world_size_mismatch_restores_nothing(monkeypatch):
    hook, runner = RandomStateHook(), make_runner()
    checkpoint = saved_checkpoint(hook, runner)
    monkeypatch.setattr(rsh, 'get_world_size', lambda: 2)
    saved = draw()
    hook.after_load_checkpoint(runner, checkpoint)
    hook.before_train_epoch(runner)
    assert not same_draws(draw(), saved)
    assert 'not restored' in runner.logger.warning.call_args[0][0]


def test_multi_process_gathers_per_rank(monkeypatch):
    """Under DDP every rank's states go into the checkpoint; each rank
    restores its own."""
    world = 2
    seed_all(10)
    rank0 = rsh.get_random_state()
    rank0_draw = draw()
    seed_all(11)
    rank1 = rsh.get_random_state()
    rank1_draw = draw()

    gathered = []
    monkeypatch.setattr(rsh, 'get_world_size', lambda: world)
    monkeypatch.setattr(rsh, 'all_gather_object',
                        lambda obj: gathered.append(obj) or [rank0, rank1])

    ckpt_hook = CheckpointHook(interval=3, by_epoch=False)
    runner = make_runner()
    runner.hooks = [ckpt_hook]
    runner.iter, runner.max_iters = 1, 100
    hook = RandomStateHook()
    # iteration 2: no checkpoint follows, no collective
    hook.after_train_iter(runner, 1)
    assert not gathered
    # iteration 3: CheckpointHook saves next, the states are gathered
    runner.iter = 2
    hook.after_train_iter(runner, 2)
    assert len(gathered) == 1
    hook.after_train_epoch(runner)  # by_epoch=False: nothing more
    assert len(gathered) == 1

    checkpoint = {}
    hook.before_save_checkpoint(runner, checkpoint)
    assert len(checkpoint['random_states']) == world

    for rank, expected in ((0, rank0_draw), (1, rank1_draw)):
        monkeypatch.setattr(rsh, 'get_rank', lambda: rank)
        torch.manual_seed(0)
        resumed = RandomStateHook()
        resumed.after_load_checkpoint(make_runner(), checkpoint)
        resumed.before_train_epoch(make_runner())
        assert same_draws(draw(), expected), rank


@pytest.mark.parametrize('by_epoch', [True, False])
def test_multi_process_save_last(monkeypatch, by_epoch):
    """The last checkpoint (``save_last``) also carries every rank."""
    calls = []
    monkeypatch.setattr(rsh, 'get_world_size', lambda: 2)
    monkeypatch.setattr(rsh, 'all_gather_object',
                        lambda obj: calls.append(obj) or [obj, obj])
    runner = make_runner()
    runner.hooks = [CheckpointHook(interval=100, by_epoch=by_epoch)]
    runner.iter, runner.max_iters = 4, 5
    runner.epoch, runner.max_epochs = 1, 2
    hook = RandomStateHook()
    if by_epoch:
        hook.after_train_iter(runner, 0)
        assert not calls
        hook.after_train_epoch(runner)
    else:
        hook.after_train_epoch(runner)
        assert not calls
        hook.after_train_iter(runner, 0)
    assert len(calls) == 1


class DrawingDataset(torch.utils.data.Dataset):
    """Samples drawn as transforms draw: from the numpy, Python and torch
    states of the main process (``num_workers=0``)."""

    def __len__(self) -> int:
        return 12

    def __getitem__(self, index: int) -> tuple:
        return index, np.random.rand(), random.random(), torch.rand(())


class LoopRunner:
    """The parts of a ``Runner`` that ``IterBasedTrainLoop`` and the hook
    use; ``train_step`` draws a "mask" from the torch state."""

    def __init__(self, hook: RandomStateHook) -> None:
        self.hooks = [hook]
        self.logger = MagicMock()
        self.visualizer = SimpleNamespace()
        self.val_loop = self.optim_wrapper = None
        self.model = MagicMock(train_step=self.train_step)
        self.trained = {}  # iteration: (batch, mask)

    @property
    def iter(self) -> int:
        return self.train_loop.iter

    def call_hook(self, fn_name: str, **kwargs) -> None:
        for hook in self.hooks:
            getattr(hook, fn_name)(self, **kwargs)

    def train_step(self, data_batch, optim_wrapper) -> dict:
        self.trained[self.iter + 1] = (data_batch, torch.rand(2))
        return {}

    def train(self, max_iters: int, start_iter: int = 0) -> None:
        loader = torch.utils.data.DataLoader(DrawingDataset(), batch_size=2)
        self.train_loop = IterBasedTrainLoop(self, loader, max_iters)
        self.train_loop._iter = start_iter  # as Runner.resume does
        self.train_loop.run()


def same_batches(a: tuple, b: tuple) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a[0] + [a[1]], b[0] + [b[1]]))


@pytest.mark.parametrize('restore', [True, False])
def test_installed_iter_based_loop_resumes_exactly(restore):
    """mmengine's own ``IterBasedTrainLoop`` (0.10.7 fetches and transforms
    the 4 skipped batches, drawing numbers): iterations 5-6 after a resume
    from iteration 4 are those of an uninterrupted run, through the loop's
    ``dataloader_iterator``, the one loop attribute the hook relies on."""
    seed_all(0)
    full = LoopRunner(RandomStateHook())
    full.train(max_iters=6)

    seed_all(0)
    part = LoopRunner(RandomStateHook())
    part.train(max_iters=4)
    checkpoint = saved_checkpoint(part.hooks[0], part)
    for it in (1, 2, 3, 4):
        assert same_batches(part.trained[it], full.trained[it]), it

    seed_all(0)  # the resumed runner re-seeds
    hook = RandomStateHook(restore=restore)
    resumed = LoopRunner(hook)
    hook.after_load_checkpoint(resumed, checkpoint)
    resumed.train(max_iters=6, start_iter=4)
    assert sorted(resumed.trained) == [5, 6]
    assert isinstance(resumed.train_loop.dataloader_iterator,
                      _InfiniteDataloaderIterator)  # its own one back
    for it in (5, 6):
        assert same_batches(resumed.trained[it],
                            full.trained[it]) == restore, it
