# Copyright (c) OpenMMLab. All rights reserved.
"""Exact resume of every algorithm's Fashion-MNIST pre-training.

Training 6 iterations in one go and training 3, stopping, resuming from the
checkpoint and training 3 more must give the same losses for iterations 4-6
(``torch.equal``) and the same final weights. The real configs are shrunk to
a 4-layer, 32-wide encoder on fake data, batch 8.
"""
import copy
import os.path as osp
from typing import Any, Dict, Optional, Tuple

import pytest
import torch
from helpers import REPO_ROOT
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import LOOPS
from mmengine.runner import IterBasedTrainLoop, Runner
from mmengine.runner.loops import _InfiniteDataloaderIterator

import mim_plugins  # noqa: F401

CONFIGS = {
    m:
    osp.join(REPO_ROOT, 'configs', m,
             f'{m}_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py')
    for m in ('mae', 'bim', 'prmim', 'mixmim', 'localmim')
}
ARCH = dict(embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64)
DECODER = dict(
    embed_dim=32, decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)
# per-method model overrides on top of the tiny encoder
MODEL = {
    'mae':
    dict(neck=DECODER),
    'bim':
    dict(backbone=dict(block_boundaries=[2, 4]), neck=DECODER),
    'prmim':
    dict(neck=DECODER),
    'mixmim':
    dict(neck=DECODER),
    'localmim':
    dict(
        backbone=dict(out_indices=[0, 1, 2, 3]),
        neck=dict(embed_dim=32, decoder_embed_dim=16, decoder_num_heads=2)),
}
BATCH = 8
ITERS_PER_EPOCH = 3


class _SamplerSkipIterator(_InfiniteDataloaderIterator):
    """Skips batches by advancing the sampler only, without loading them."""

    def skip_iter(self, num_iters: int) -> None:
        for _ in range(num_iters):
            try:
                self._iterator._next_index()
            except StopIteration:
                self._epoch += 1
                self._dataloader.sampler.set_epoch(self._epoch)
                self._iterator = iter(self._dataloader)
                self._iterator._next_index()


@LOOPS.register_module()
class SamplerSkipIterBasedTrainLoop(IterBasedTrainLoop):
    """``IterBasedTrainLoop`` that resumes as mmengine 0.10.11+ does.

    The batches already trained on are skipped with the data iterator's
    ``skip_iter`` (the sampler advances, nothing is loaded or transformed)
    instead of being fetched one by one as in mmengine 0.10.7.
    """

    skipped = 0  # batches skipped the new way, for the test to check

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.dataloader_iterator = _SamplerSkipIterator(self.dataloader)

    def run(self) -> None:
        self.runner.call_hook('before_train')
        self.runner.call_hook('before_train_epoch')
        if self._iter > 0:
            self.dataloader_iterator.skip_iter(self._iter)
            SamplerSkipIterBasedTrainLoop.skipped += self._iter
        while self._iter < self._max_iters and not self.stop_training:
            self.runner.model.train()
            self.run_iter(next(self.dataloader_iterator))
        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')


class RunRecorder(Hook):
    """Per-iteration losses and, at each epoch start, optimizer and
    scheduler states."""

    priority = 'LOWEST'

    def __init__(self) -> None:
        self.losses: Dict[int, Dict[str, torch.Tensor]] = {}
        self.states: Dict[int, Dict[str, Any]] = {}

    def before_train_epoch(self, runner) -> None:
        schedulers = runner.param_schedulers
        if isinstance(schedulers, dict):
            sched = {
                k: [s.state_dict() for s in v]
                for k, v in schedulers.items()
            }
        else:
            sched = [s.state_dict() for s in schedulers]
        self.states[runner.iter] = copy.deepcopy(
            dict(
                optimizer=runner.optim_wrapper.state_dict(), schedulers=sched))

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        self.losses[runner.iter + 1] = {
            k: torch.as_tensor(v).detach().clone()
            for k, v in outputs.items() if 'loss' in k
        }


def make_cfg(method: str,
             data_root: str,
             work_dir: str,
             name: str,
             num_samples: int = BATCH * ITERS_PER_EPOCH,
             random_state_hook: bool = True) -> Config:
    """The method's real config, shrunk to a tiny model and dataset."""
    cfg = Config.fromfile(CONFIGS[method])
    model = copy.deepcopy(MODEL[method])
    cfg.model.backbone.arch = copy.deepcopy(ARCH)
    cfg.merge_from_dict(dict(model=model))
    cfg.merge_from_dict({
        'train_dataloader.dataset.data_prefix': data_root,
        'train_dataloader.dataset.indices': num_samples,
        'train_dataloader.batch_size': BATCH,
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'default_hooks.logger.interval': 1,
        'default_hooks.checkpoint.interval': 1,
    })
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=2)
    cfg.randomness = dict(seed=0, deterministic=True)
    if not random_state_hook:
        cfg.custom_hooks = [
            h for h in cfg.custom_hooks if h['type'] != 'RandomStateHook'
        ]
    cfg.work_dir = work_dir
    cfg.experiment_name = name  # unique message hub / visualizer names
    cfg.log_level = 'WARNING'
    return cfg


def train(cfg: Config,
          stop_iter: Optional[int] = None,
          resume_from: Optional[str] = None) -> Tuple[Runner, RunRecorder]:
    """Train ``cfg``; stop after ``stop_iter`` iterations; or resume."""
    cfg = copy.deepcopy(cfg)
    if stop_iter is not None:
        if 'max_iters' in cfg.train_cfg:
            cfg.train_cfg.max_iters = stop_iter
        else:
            cfg.train_cfg.max_epochs = stop_iter // ITERS_PER_EPOCH
    if resume_from is not None:
        cfg.resume = True
        cfg.load_from = resume_from
        cfg.experiment_name += '_resumed'
    runner = Runner.from_cfg(cfg)
    recorder = RunRecorder()
    runner.register_hook(recorder)
    runner.train()
    return runner, recorder


def equal(a, b) -> bool:
    """Exact, recursive equality of nested states."""
    if torch.is_tensor(a):
        return torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(
            equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(
            equal(x, y) for x, y in zip(a, b))
    return a == b


def run_pair(cfg: Config, tmp_path, stop: int = 3) -> Tuple:
    """Uninterrupted run and a run stopped after ``stop`` iterations and
    resumed."""
    full_cfg = copy.deepcopy(cfg)
    full_cfg.work_dir = str(tmp_path / 'full')
    full_cfg.experiment_name += '_full'
    full, full_rec = train(full_cfg)
    part_cfg = copy.deepcopy(cfg)
    part_cfg.work_dir = str(tmp_path / 'part')
    part_cfg.experiment_name += '_part'
    _, part_rec = train(part_cfg, stop_iter=stop)
    by_epoch = 'max_iters' not in cfg.train_cfg
    ckpt = osp.join(
        part_cfg.work_dir, f'epoch_{stop // ITERS_PER_EPOCH}.pth'
        if by_epoch else f'iter_{stop}.pth')
    assert osp.isfile(ckpt)
    resumed, resumed_rec = train(part_cfg, resume_from=ckpt)
    return full, full_rec, part_rec, resumed, resumed_rec


def assert_same_params(a: Runner, b: Runner) -> None:
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.mark.parametrize('method', list(CONFIGS))
def test_exact_resume(method, fmnist_root, tmp_path):
    cfg = make_cfg(method, fmnist_root, str(tmp_path), f'exact_{method}')
    full, full_rec, part_rec, resumed, resumed_rec = run_pair(cfg, tmp_path)

    assert sorted(full_rec.losses) == [1, 2, 3, 4, 5, 6]
    assert sorted(part_rec.losses) == [1, 2, 3]
    assert sorted(resumed_rec.losses) == [4, 5, 6]
    for it in (1, 2, 3):  # same start
        assert equal(part_rec.losses[it], full_rec.losses[it]), it
    for it in (4, 5, 6):
        assert equal(resumed_rec.losses[it],
                     full_rec.losses[it]), (it, resumed_rec.losses[it],
                                            full_rec.losses[it])
    # the losses change from one iteration to the next (a real run)
    assert not torch.equal(full_rec.losses[4]['loss'],
                           full_rec.losses[5]['loss'])
    assert_same_params(full, resumed)

    # optimizer (every block's for BIM) and scheduler states right after the
    # resume are those of the uninterrupted run after 3 iterations ...
    assert equal(resumed_rec.states[3], full_rec.states[3])
    # ... and so are the final ones
    assert equal(resumed.optim_wrapper.state_dict(),
                 full.optim_wrapper.state_dict())
    if method == 'bim':
        optim = resumed_rec.states[3]['optimizer']
        assert sorted(optim) == ['block1', 'block2']
        for block in optim.values():
            steps = [s['step'] for s in block['state'].values()]
            assert steps and all(int(s) == 3 for s in steps)
        assert sorted(
            resumed_rec.states[3]['schedulers']) == ['block1', 'block2']
        full_scheds = full_rec.states[3]['schedulers']
        for name, scheds in resumed_rec.states[3]['schedulers'].items():
            # advanced (a fresh LinearLR is at step 0), as uninterrupted
            assert scheds[0]['last_step'] > 0
            assert equal(scheds, full_scheds[name])


def test_resume_differs_without_hook(fmnist_root, tmp_path):
    """mmengine alone re-seeds on resume: the losses after it differ."""
    cfg = make_cfg(
        'mae',
        fmnist_root,
        str(tmp_path),
        'nohook_mae',
        random_state_hook=False)
    full, full_rec, _, resumed, resumed_rec = run_pair(cfg, tmp_path)
    # weights and optimizer are resumed, the random numbers are not
    assert equal(resumed_rec.states[3], full_rec.states[3])
    assert not torch.equal(resumed_rec.losses[4]['loss'],
                           full_rec.losses[4]['loss'])
    sa, sb = full.model.state_dict(), resumed.model.state_dict()
    assert any(not torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize('method', ['mae', 'bim'])
def test_exact_resume_iter_based(method, fmnist_root, tmp_path):
    """IterBasedTrainLoop, checkpoint in the middle of an epoch.

    3 iterations per epoch; the checkpoint after iteration 4 is mid-epoch,
    and on resume the loop skips 4 batches (crossing an epoch end, which
    re-shuffles) before iterations 5-6.
    """
    cfg = make_cfg(method, fmnist_root, str(tmp_path), f'iter_{method}')
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=6)
    cfg.default_hooks.checkpoint.by_epoch = False
    cfg.default_hooks.checkpoint.interval = 4
    cfg.log_processor = dict(window_size=10, by_epoch=False)
    full, full_rec, part_rec, resumed, resumed_rec = run_pair(
        cfg, tmp_path, stop=4)
    assert sorted(part_rec.losses) == [1, 2, 3, 4]
    assert sorted(resumed_rec.losses) == [5, 6]
    for it in (5, 6):
        assert equal(resumed_rec.losses[it], full_rec.losses[it]), it
    assert_same_params(full, resumed)
    assert equal(resumed.optim_wrapper.state_dict(),
                 full.optim_wrapper.state_dict())


def test_exact_resume_with_workers(fmnist_root, tmp_path):
    """Non-persistent dataloader workers restart every epoch from the same
    seeds (mmengine's ``worker_init_fn``), so epoch-boundary resumes stay
    exact with workers too."""
    cfg = make_cfg('mae', fmnist_root, str(tmp_path), 'workers_mae')
    cfg.train_dataloader.num_workers = 2
    cfg.train_dataloader.persistent_workers = False
    full, full_rec, _, resumed, resumed_rec = run_pair(cfg, tmp_path)
    for it in (4, 5, 6):
        assert equal(resumed_rec.losses[it], full_rec.losses[it]), it
    assert_same_params(full, resumed)


def test_exact_resume_sampler_skip(fmnist_root, tmp_path, monkeypatch):
    """Newer mmengine skips the trained batches without loading them: the
    skip draws other random numbers than 0.10.7's, the resume stays exact.
    """
    monkeypatch.setattr(SamplerSkipIterBasedTrainLoop, 'skipped', 0)
    cfg = make_cfg('mae', fmnist_root, str(tmp_path), 'skip_mae')
    cfg.train_cfg = dict(type='SamplerSkipIterBasedTrainLoop', max_iters=6)
    cfg.default_hooks.checkpoint.by_epoch = False
    cfg.default_hooks.checkpoint.interval = 4
    cfg.log_processor = dict(window_size=10, by_epoch=False)
    full, full_rec, _, resumed, resumed_rec = run_pair(cfg, tmp_path, stop=4)
    assert SamplerSkipIterBasedTrainLoop.skipped == 4  # the resume only
    assert sorted(resumed_rec.losses) == [5, 6]
    for it in (5, 6):
        assert equal(resumed_rec.losses[it], full_rec.losses[it]), it
    assert_same_params(full, resumed)
