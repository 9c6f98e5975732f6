# Copyright (c) OpenMMLab. All rights reserved.
import functools
import http.server
import os.path as osp
import pickle
import threading

import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.logging import HistoryBuffer
from mmengine.runner import Runner
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint

from mim_plugins.utils import compat


def test_local_runner_checkpoint_loads(tmp_path):
    # A runner checkpoint pickles HistoryBuffer objects: torch >= 2.6 refuses
    # it with the default weights_only=True; the plugin's local loader not.
    buf = HistoryBuffer()
    buf.update(1.5)
    ckpt = dict(
        state_dict=dict(w=torch.ones(2)), message_hub=dict(log_scalars=buf))
    path = str(tmp_path / 'epoch_1.pth')
    torch.save(ckpt, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
    loaded = _load_checkpoint(path, map_location='cpu')
    assert torch.equal(loaded['state_dict']['w'], torch.ones(2))
    assert loaded['message_hub']['log_scalars'].current() == 1.5
    with pytest.raises(FileNotFoundError):
        _load_checkpoint(str(tmp_path / 'missing.pth'))


def test_schemes_are_the_plugin_loaders():
    assert CheckpointLoader._get_checkpoint_loader('a/b.pth') is \
        compat.load_local_checkpoint
    assert CheckpointLoader._get_checkpoint_loader('https://x/y.pth') is \
        compat.load_http_checkpoint
    # open-mmlab://, torchvision:// and mmcls:// download through it.
    import mmengine.runner.checkpoint as mmengine_checkpoint
    assert mmengine_checkpoint.load_from_http is compat.load_http_checkpoint
    # The Runner's loading entry points know the run's work_dir.
    for name in ('load_checkpoint', '_init_model_weights'):
        assert hasattr(getattr(Runner, name), '__wrapped__'), name


def test_trusted_checkpoint_dir(tmp_path):
    work_dir, outside = tmp_path / 'run', tmp_path / 'other'
    work_dir.mkdir()
    outside.mkdir()
    (outside / 'x.pth').write_bytes(b'')
    # A link inside the work_dir to a file elsewhere is not the run's own.
    (work_dir / 'link.pth').symlink_to(outside / 'x.pth')
    own = str(work_dir / 'sub' / 'epoch_1.pth')
    assert not compat.is_in_run_work_dir(own)  # no run is loading
    with compat.trusted_checkpoint_dir(str(work_dir)):
        assert compat.is_in_run_work_dir(own)
        assert not compat.is_in_run_work_dir(str(outside / 'x.pth'))
        assert not compat.is_in_run_work_dir(str(work_dir / 'link.pth'))
        assert not compat.is_in_run_work_dir(str(tmp_path / 'run2' / 'a'))
        with compat.trusted_checkpoint_dir(None):
            assert not compat.is_in_run_work_dir(own)
        assert compat.is_in_run_work_dir(own)
    assert not compat.is_in_run_work_dir(own)


class _Evil:
    """Pickles to a call of `exec` (what a malicious checkpoint does)."""

    def __reduce__(self):
        return (exec, ('import builtins; builtins.PWNED = True', ))


@pytest.fixture()
def http_dir(tmp_path, tmp_path_factory, monkeypatch):
    # Downloads without model_dir go to a private torch hub directory.
    monkeypatch.setattr(torch.hub, '_hub_dir', None)
    torch.hub.set_dir(str(tmp_path_factory.mktemp('default_hub')))
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f'http://127.0.0.1:{server.server_address[1]}'
    server.shutdown()
    server.server_close()


def test_http_checkpoints_load_weights_only(http_dir, tmp_path_factory):
    import builtins
    folder, url = http_dir
    torch.save(dict(state_dict=dict(w=torch.arange(3))), folder / 'ok.pth')
    torch.save(dict(state_dict=dict(w=_Evil())), folder / 'evil.pth')
    cache = str(tmp_path_factory.mktemp('hub'))

    ok = compat.load_http_checkpoint(f'{url}/ok.pth', model_dir=cache)
    assert torch.equal(ok['state_dict']['w'], torch.arange(3))

    with pytest.raises(pickle.UnpicklingError, match='exec'):
        _load_checkpoint(f'{url}/evil.pth', map_location='cpu')
    assert not hasattr(builtins, 'PWNED')
    assert osp.isfile(osp.join(torch.hub.get_dir(), 'checkpoints', 'evil.pth'))


def test_collate_scope_is_stripped(fmnist_root):
    cfg = dict(
        batch_size=4,
        num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=False),
        collate_fn=dict(type='default_collate', _scope_='mmpretrain'),
        dataset=dict(
            type='mmpretrain.FashionMNIST',
            data_prefix=fmnist_root,
            download=False,
            indices=8,
            pipeline=[dict(type='mmpretrain.PackInputs')]))
    assert compat.strip_collate_scope(
        ConfigDict(cfg))['collate_fn'] == dict(type='default_collate')
    assert cfg['collate_fn']['_scope_'] == 'mmpretrain', 'input not mutated'
    batch = next(iter(Runner.build_dataloader(cfg)))
    assert batch['inputs'].shape == (4, 1, 28, 28)


def test_inherited_mmpretrain_config_collate_fn():
    # The real case: a child of an `mmpretrain::` config gets `_scope_`.
    cfg = Config.fromfile(
        osp.join(
            osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
            'configs/mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py'))
    assert cfg.train_dataloader.collate_fn.get('_scope_') == 'mmpretrain'
    stripped = compat.strip_collate_scope(cfg.train_dataloader)
    assert '_scope_' not in stripped['collate_fn']


def test_amp_on_cpu_is_bf16_autocast():
    from mmpretrain.registry import OPTIM_WRAPPERS
    model = torch.nn.Linear(4, 2)
    optim = torch.optim.SGD(model.parameters(), lr=0.1)
    if torch.cuda.is_available():
        pytest.skip('the CPU fallback only applies without CUDA')
    with pytest.warns(UserWarning, match='bfloat16'):
        wrapper = OPTIM_WRAPPERS.build(
            dict(type='AmpOptimWrapper', loss_scale='dynamic'),
            default_args=dict(optimizer=optim))
    assert isinstance(wrapper, compat.CPUAmpOptimWrapper)
    with wrapper.optim_context(model):
        out = model(torch.randn(3, 4))
    assert out.dtype == torch.bfloat16
    before = model.weight.detach().clone()
    wrapper.update_params(out.float().pow(2).mean())
    assert model.weight.dtype == torch.float32
    assert not torch.equal(before, model.weight)
    with pytest.raises(ValueError, match='optim_wrapper.dtype'):
        compat.CPUAmpOptimWrapper(dtype='float16', optimizer=optim)


def test_setup_cpu_distributed_without_launcher_is_noop():
    cfg = Config(dict(launcher='none', model=dict()))
    assert compat.setup_cpu_distributed(cfg).get('model_wrapper_cfg') is None
