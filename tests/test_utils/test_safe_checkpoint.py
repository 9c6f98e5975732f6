# Copyright (c) OpenMMLab. All rights reserved.
"""Every checkpoint, the run's own included, loads with weights_only=True.

A real runner checkpoint (tiny MAE, one iteration on fake data) is used
throughout, so the allowlist is checked against what mmengine really writes.
"""
import copy
import fractions
import functools
import http.server
import importlib.util
import os
import os.path as osp
import pickle
import shutil
import threading
import uuid

import pytest
import torch
from helpers import DEMO_CONFIG, REPO_ROOT
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.runner import Runner
from mmengine.runner import checkpoint as mmengine_checkpoint
from mmengine.runner.checkpoint import _load_checkpoint
from mmpretrain.registry import MODELS

from mim_plugins.utils import safe_checkpoint_loading as safe

FINETUNE_CONFIG = osp.join(
    REPO_ROOT,
    'configs/mae/benchmarks/vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py')


def demo_cfg(data_root: str, work_dir: str, **extra) -> Config:
    """The MAE demo config shrunk to one 32-image iteration."""
    cfg = Config.fromfile(DEMO_CONFIG)
    cfg.train_dataloader.dataset.data_prefix = data_root
    cfg.train_dataloader.dataset.indices = 32
    cfg.train_dataloader.batch_size = 32
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    cfg.train_cfg.max_epochs = 1
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'test_{uuid.uuid4().hex[:8]}'
    cfg.merge_from_dict(extra)
    return cfg


def finetune_cfg(data_root: str, work_dir: str, checkpoint: str) -> Config:
    """The ViT fine-tune config on fake data, backbone from ``checkpoint``."""
    cfg = Config.fromfile(FINETUNE_CONFIG)
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.dataset.data_prefix = data_root
        loader.dataset.indices = 16
        loader.batch_size = 16
        loader.num_workers = 0
    cfg.model.backbone.init_cfg.checkpoint = checkpoint
    cfg.train_cfg.max_epochs = 1
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'test_{uuid.uuid4().hex[:8]}'
    return cfg


def tiny_finetune_model(checkpoint: str) -> dict:
    """The fine-tune config's model, shrunk to a 2-layer 32-wide ViT."""
    model = copy.deepcopy(Config.fromfile(FINETUNE_CONFIG).model)
    model.backbone.update(
        arch=dict(
            embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64),
        img_size=16)
    model.backbone.init_cfg.checkpoint = checkpoint
    model.head.in_channels = 32
    return model


class _Stop(Exception):
    """Raised by :class:`_StopBeforeTrain` to end a run before iterating."""


class _StopBeforeTrain(Hook):
    """Records the model weights once loaded, then stops the run."""

    def before_train(self, runner) -> None:
        self.state = {
            k: v.detach().clone()
            for k, v in runner.model.state_dict().items()
        }
        raise _Stop


class _Evil:
    """Pickles to a call that writes ``marker`` (a malicious checkpoint)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f'open({self.marker!r}, "w").write("pwned")', ))


class _GetattrReduce:
    """Pickles to ``getattr(HistoryBuffer, name)``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __reduce__(self):
        return (getattr, (HistoryBuffer, self.name))


@pytest.fixture(scope='module')
def pretrain_ckpt(fmnist_root, tmp_path_factory) -> str:
    """A real runner checkpoint of a finished tiny MAE run."""
    work_dir = tmp_path_factory.mktemp('pretrain_run')
    Runner.from_cfg(demo_cfg(fmnist_root, work_dir)).train()
    return str(work_dir / 'epoch_1.pth')


@pytest.fixture()
def load_calls(monkeypatch) -> list:
    """Records ``(path, weights_only)`` of every ``torch.load`` call: True
    if the call asks for it or torch's ``TORCH_FORCE_WEIGHTS_ONLY_LOAD`` is
    set (it overrides the argument)."""
    calls = []
    original = torch.load

    def spy(f, *args, **kwargs):
        forced = os.environ.get('TORCH_FORCE_WEIGHTS_ONLY_LOAD') == '1'
        calls.append((str(f), forced or kwargs.get('weights_only') is True))
        return original(f, *args, **kwargs)

    monkeypatch.setattr(torch, 'load', spy)
    return calls


@pytest.fixture()
def http_dir(tmp_path_factory, monkeypatch):
    """A folder served on 127.0.0.1, and a private torch hub directory."""
    folder = tmp_path_factory.mktemp('served')
    hub = tmp_path_factory.mktemp('hub')
    # set_dir writes torch.hub._hub_dir; monkeypatch restores it afterwards.
    monkeypatch.setattr(torch.hub, '_hub_dir', None)
    torch.hub.set_dir(str(hub))
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f'http://127.0.0.1:{server.server_address[1]}', hub
    server.shutdown()
    server.server_close()


def backbone_of(ckpt: dict) -> dict:
    return {
        k[len('backbone.'):]: v
        for k, v in ckpt['state_dict'].items() if k.startswith('backbone.')
    }


def test_runner_checkpoint_loads_weights_only(pretrain_ckpt, load_calls):
    ckpt = _load_checkpoint(pretrain_ckpt, map_location='cpu')
    assert load_calls == [(pretrain_ckpt, True)]
    hub = ckpt['message_hub']
    assert isinstance(hub['log_scalars']['train/loss'], HistoryBuffer)
    assert hub['log_scalars']['train/loss'].mean() > 0
    assert float(hub['runtime_info']['eta']) >= 0  # a numpy scalar
    assert ckpt['meta']['epoch'] == 1


def test_getattr_only_reaches_history_buffer_statistics(tmp_path):
    ok = str(tmp_path / 'ok.pth')
    torch.save(dict(f=_GetattrReduce('mean')), ok)
    assert _load_checkpoint(ok)['f'] is HistoryBuffer.mean
    bad = str(tmp_path / 'bad.pth')
    torch.save(dict(f=_GetattrReduce('register_statistics')), bad)
    with pytest.raises(safe.UnsafeCheckpointError) as info:
        _load_checkpoint(bad)
    assert 'not allowlisted' in str(info.value.__cause__)
    # torch.load itself, with its default, also refuses it.
    with pytest.raises(pickle.UnpicklingError, match='not allowlisted'):
        torch.load(bad)


def test_other_runs_checkpoint_as_load_from(pretrain_ckpt, fmnist_root,
                                            tmp_path, load_calls):
    runner = Runner.from_cfg(
        demo_cfg(fmnist_root, tmp_path, load_from=pretrain_ckpt))
    runner.load_or_resume()
    # Outside the run's work_dir: restricted unpickling, with the allowlist.
    assert load_calls == [(pretrain_ckpt, True)]
    expected = torch.load(pretrain_ckpt, weights_only=False)['state_dict']
    state = runner.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in expected.items())


def test_other_runs_checkpoint_as_init_cfg(pretrain_ckpt, fmnist_root,
                                           tmp_path, load_calls):
    runner = Runner.from_cfg(
        finetune_cfg(fmnist_root, tmp_path, pretrain_ckpt))
    stop = _StopBeforeTrain()
    runner.register_hook(stop)
    with pytest.raises(_Stop):
        runner.train()
    assert load_calls == [(pretrain_ckpt, True)]
    pretrained = backbone_of(torch.load(pretrain_ckpt, weights_only=False))
    for key in ('patch_embed.projection.weight', 'layers.11.ffn.layers.1.bias',
                'cls_token', 'pos_embed'):
        assert torch.equal(stop.state[f'backbone.{key}'], pretrained[key])


def test_own_checkpoint_resumes_weights_only(pretrain_ckpt, fmnist_root,
                                             tmp_path, load_calls):
    ckpt = torch.load(pretrain_ckpt, weights_only=False)
    work_dir = tmp_path / 'run'
    work_dir.mkdir()
    own = str(work_dir / 'epoch_1.pth')
    shutil.copy(pretrain_ckpt, own)
    (work_dir / 'last_checkpoint').write_text(own)
    load_calls.clear()

    # Auto-resume (``--resume`` without a path) and an explicit path.
    for load_from in (None, own):
        runner = Runner.from_cfg(
            demo_cfg(
                fmnist_root,
                work_dir,
                resume=True,
                load_from=load_from,
                train_cfg=dict(max_epochs=2)))
        runner.load_or_resume()
        assert runner.epoch == 1 and runner.iter == 1
        loss = runner.message_hub.get_scalar('train/loss')
        assert loss.current(
        ) == ckpt['message_hub']['log_scalars']['train/loss'].current()
        assert len(runner.optim_wrapper.optimizer.state) > 0
    assert load_calls == [(own, True), (own, True)]

    # No folder is trusted: an object outside the allowlist in the run's own
    # work_dir is refused too.
    ckpt['meta']['note'] = fractions.Fraction(1, 3)
    torch.save(ckpt, own)
    runner = Runner.from_cfg(
        demo_cfg(fmnist_root, work_dir, resume=True, load_from=own))
    with pytest.raises(safe.UnsafeCheckpointError) as info:
        runner.load_or_resume()
    message = str(info.value)
    assert own in message and 'weights_only=True' in message
    assert 'publish_model.py' in message
    assert 'Fraction' in str(info.value.__cause__)


def test_malicious_local_checkpoint_is_refused(fmnist_root, tmp_path):
    marker = tmp_path / 'executed'
    (tmp_path / 'downloads').mkdir()
    evil = str(tmp_path / 'downloads' / 'evil.pth')
    torch.save(dict(state_dict=dict(w=_Evil(str(marker)))), evil)

    # As ``load_from``.
    runner = Runner.from_cfg(
        demo_cfg(fmnist_root, tmp_path / 'run', load_from=evil))
    with pytest.raises(safe.UnsafeCheckpointError) as info:
        runner.load_or_resume()
    assert evil in str(info.value) and 'Nothing from it ran' in str(info.value)
    assert 'exec' in str(info.value.__cause__)
    assert not marker.exists()

    # As ``init_cfg=dict(type='Pretrained')`` of a fine-tune run.
    runner = Runner.from_cfg(finetune_cfg(fmnist_root, tmp_path / 'ft', evil))
    with pytest.raises(safe.UnsafeCheckpointError, match=evil):
        runner.train()
    assert not marker.exists()

    # The payload is real: full unpickling runs it.
    torch.load(evil, weights_only=False)
    assert marker.read_text() == 'pwned'


def test_http_pretrained_init_cfg(http_dir):
    folder, url, hub = http_dir
    source = MODELS.build(tiny_finetune_model(''))
    torch.manual_seed(0)
    for param in source.backbone.parameters():  # unlike any default init
        param.data.normal_()
    served = {
        f'backbone.{k}': v
        for k, v in source.backbone.state_dict().items()
    }
    served['head.layers.head.weight'] = torch.zeros(10, 32)  # not backbone
    torch.save(dict(state_dict=served), folder / 'x.pth')

    model = MODELS.build(tiny_finetune_model(f'{url}/x.pth'))
    assert not torch.equal(model.backbone.pos_embed, source.backbone.pos_embed)
    model.init_weights()
    state = model.backbone.state_dict()
    for key, value in source.backbone.state_dict().items():
        assert torch.equal(state[key], value), key
    assert osp.isfile(hub / 'checkpoints' / 'x.pth')  # private hub dir


def test_http_runner_checkpoint_and_malicious_pickle(http_dir, pretrain_ckpt,
                                                     tmp_path):
    folder, url, hub = http_dir
    shutil.copy(pretrain_ckpt, folder / 'mae.pth')
    model = MODELS.build(Config.fromfile(FINETUNE_CONFIG).model)
    model.backbone.init_cfg['checkpoint'] = f'{url}/mae.pth'
    model.init_weights()
    pretrained = backbone_of(torch.load(pretrain_ckpt, weights_only=False))
    assert torch.equal(model.backbone.patch_embed.projection.weight,
                       pretrained['patch_embed.projection.weight'])

    marker = tmp_path / 'executed'
    torch.save(
        dict(state_dict=dict(w=_Evil(str(marker)))), folder / 'evil.pth')
    with pytest.raises(safe.UnsafeCheckpointError) as info:
        _load_checkpoint(f'{url}/evil.pth', map_location='cpu')
    assert f'{url}/evil.pth' in str(info.value)
    assert str(hub / 'checkpoints' / 'evil.pth') in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize('prefix', ['torchvision', 'open-mmlab', 'mmcls'])
def test_model_zoo_names_load_weights_only(prefix, http_dir, tmp_path,
                                           monkeypatch):
    # mmengine fetches these with torch.hub, which unpickles fully.
    folder, url, hub = http_dir
    marker = tmp_path / 'executed'
    torch.save(
        dict(state_dict=dict(w=_Evil(str(marker)))), folder / 'evil.pth')
    torch.save({'backbone.w': torch.ones(2)}, folder / 'ok.pth')
    zoo = {'ok': f'{url}/ok.pth', 'evil': f'{url}/evil.pth'}
    for getter in ('get_torchvision_models', 'get_external_models',
                   'get_mmcls_models'):
        monkeypatch.setattr(mmengine_checkpoint, getter, lambda: zoo)
    ckpt = _load_checkpoint(f'{prefix}://ok', map_location='cpu')
    # mmcls:// checkpoints keep the backbone only, without its prefix.
    state = ckpt['state_dict'] if prefix == 'mmcls' else ckpt
    key = 'w' if prefix == 'mmcls' else 'backbone.w'
    assert list(state) == [key] and torch.equal(state[key], torch.ones(2))
    with pytest.raises(safe.UnsafeCheckpointError, match=f'{prefix}://evil'):
        _load_checkpoint(f'{prefix}://evil', map_location='cpu')
    assert not marker.exists()


def test_truncated_checkpoint_local_and_http(pretrain_ckpt, http_dir,
                                             tmp_path):
    with open(pretrain_ckpt, 'rb') as f:
        data = f.read()
    half = tmp_path / 'half.pth'
    half.write_bytes(data[:len(data) // 2])

    with pytest.raises(
            safe.CorruptCheckpointError, match='truncated or corrupt') as info:
        _load_checkpoint(str(half))
    assert str(half) in str(info.value)

    folder, url, hub = http_dir
    (folder / 'half.pth').write_bytes(data[:len(data) // 2])
    with pytest.raises(
            safe.CorruptCheckpointError, match='truncated or corrupt') as info:
        _load_checkpoint(f'{url}/half.pth')
    assert f'{url}/half.pth' in str(info.value)
    # The bad download is not kept: a retry fetches the file again.
    assert not osp.exists(hub / 'checkpoints' / 'half.pth')
    shutil.copy(pretrain_ckpt, folder / 'half.pth')
    assert _load_checkpoint(f'{url}/half.pth')['meta']['epoch'] == 1


def test_published_real_checkpoint_loads_weights_only(pretrain_ckpt, tmp_path):
    # In-process (the command line is covered in test_model_converters.py).
    spec = importlib.util.spec_from_file_location(
        'publish_model',
        osp.join(REPO_ROOT, 'tools/model_converters/publish_model.py'))
    publish_model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(publish_model)
    out = publish_model.publish(pretrain_ckpt, str(tmp_path / 'mae.pth'))
    published = torch.load(out, weights_only=True)  # no allowlist needed
    expected = torch.load(pretrain_ckpt, weights_only=False)['state_dict']
    assert set(published['state_dict']) == set(expected)
    assert all(
        torch.equal(published['state_dict'][k], v)
        for k, v in expected.items())


def test_allowlist_is_data_only():
    import argparse
    import builtins
    import subprocess

    import numpy as np
    entries = [e[0] if isinstance(e, tuple) else e for e in safe.SAFE_GLOBALS]
    functions = [e for e in entries if not isinstance(e, type)]
    # numpy's array and scalar builders, the getattr limited to statistics
    assert sorted(f.__name__ for f in functions) == [
        '_history_buffer_getattr', '_reconstruct', '_reconstruct', 'scalar',
        'scalar'
    ]
    data_types = (HistoryBuffer, argparse.Namespace, np.ndarray, bytes)
    for cls in (e for e in entries if isinstance(e, type)):
        assert cls in data_types or issubclass(cls, np.dtype), cls
    allowed = {
        e[0] if isinstance(e, tuple) else e
        for e in torch.serialization.get_safe_globals()
    }
    for dangerous in (builtins.getattr, builtins.eval, builtins.exec,
                      os.system, functools.partial, subprocess.Popen):
        assert dangerous not in allowed


def test_loading_forces_weights_only_and_restores_environment(
        pretrain_ckpt, tmp_path, monkeypatch):
    # The common workaround for mmengine 0.10 on torch >= 2.6; it must not
    # reopen full unpickling, nor clash with the plugin's switch.
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    monkeypatch.delenv('TORCH_FORCE_WEIGHTS_ONLY_LOAD', raising=False)
    marker = tmp_path / 'executed'
    evil = str(tmp_path / 'evil.pth')
    torch.save(dict(meta=_Evil(str(marker))), evil)
    with pytest.raises(safe.UnsafeCheckpointError, match=evil):
        _load_checkpoint(evil)
    assert not marker.exists()
    assert _load_checkpoint(pretrain_ckpt)['meta']['epoch'] == 1
    assert os.environ['TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'] == '1'
    assert 'TORCH_FORCE_WEIGHTS_ONLY_LOAD' not in os.environ


def test_missing_file_and_unknown_name_are_not_corrupt(tmp_path):
    with pytest.raises(FileNotFoundError):
        _load_checkpoint(str(tmp_path / 'missing.pth'))
    with pytest.raises(KeyError, match='no_such_model'):
        _load_checkpoint('torchvision://no_such_model')


def test_concurrent_loads_wait_for_the_switch(monkeypatch):
    # Without the lock a second load could start inside the first and, on
    # leaving, clear the switch while the first one still unpickles.
    monkeypatch.delenv('TORCH_FORCE_WEIGHTS_ONLY_LOAD', raising=False)
    inside, release, seen = threading.Event(), threading.Event(), []

    def first():
        with safe._force_weights_only():
            inside.set()
            release.wait(10)
            seen.append(os.environ.get('TORCH_FORCE_WEIGHTS_ONLY_LOAD'))

    def second():
        with safe._force_weights_only():
            seen.append('second')

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    inside.wait(10)
    threads[1].start()
    threads[1].join(0.3)
    assert threads[1].is_alive() and seen == []  # waits for the first
    release.set()
    for thread in threads:
        thread.join(10)
    assert seen == ['1', 'second']
    assert 'TORCH_FORCE_WEIGHTS_ONLY_LOAD' not in os.environ
