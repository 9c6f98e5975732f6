# Copyright (c) OpenMMLab. All rights reserved.
"""Every tool that reads a checkpoint loads it weights-only.

Per converter: a hostile pickle is refused before any of it runs; the layouts
the tool converts load (a runner checkpoint written by the project, an
mmpretrain model-zoo MAE file, the official LocalMIM release layout with its
``argparse.Namespace``); ``--unsafe-full-unpickle`` loads a legacy file that
the allowlist refuses, with a warning naming it. ``tools/test.py`` and the
visualizer refuse a hostile pickle too (they load through mmengine's loader,
which the plugin makes weights-only; they have no opt-in).
"""
import argparse
import fractions
import importlib.util
import os.path as osp
import subprocess
import sys
import uuid
from collections import OrderedDict

import pytest
import torch
from helpers import DEMO_CONFIG, REPO_ROOT, subprocess_env, tiny_fmnist_config
from mmengine.config import Config
from mmengine.runner import Runner
from test_bim_extract_backbones import MODEL as BIM_MODEL
from test_bim_extract_backbones import trained_bim
from test_localmim_to_mmpretrain import official_state_dict

from mim_plugins.utils import UnsafeCheckpointError

TOOLS = osp.join(REPO_ROOT, 'tools', 'model_converters')
PATCH = 'patch_embed.projection.weight'
# tool -> (layouts it converts, output key holding the patch embedding)
CASES = dict(
    extract_backbone=(('runner', 'mae_zoo'), f'backbone.{PATCH}'),
    publish_model=(('runner', 'mae_zoo'), f'backbone.{PATCH}'),
    to_vitdet=(('runner', 'mae_zoo'), 'patch_embed.proj.weight'),
    to_mmseg_mae=(('runner', 'mae_zoo'), PATCH),
    bim_extract_backbones=(('bim', ), f'backbone.{PATCH}'),
    localmim_to_mmpretrain=(('localmim', ), f'backbone.{PATCH}'))


class _Evil:
    """Pickles to a call that writes ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f'open({self.marker!r}, "w").write("pwned")', ))


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(
        name, osp.join(TOOLS, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(tool: str, src: str, out_dir, *flags: str) -> str:
    """Run ``tool``'s ``main`` in-process; the output file it wrote."""
    out = str(out_dir / 'out.pth')
    if tool == 'bim_extract_backbones':
        argv = [src, str(out_dir), '--block-boundaries', '1', '3', '4']
        out = str(out_dir / 'bim_backbone_depth4.pth')
    else:
        argv = [src, out]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, 'argv', [tool, *argv, *flags])
        if tool == 'publish_model':
            mp.setattr(sys, 'argv', sys.argv + ['--date', '20260101'])
        load_tool(tool).main()
    if tool == 'publish_model':
        [out] = [str(p) for p in out_dir.glob('out_20260101-*.pth')]
    return out


@pytest.fixture(scope='module')
def sources(fmnist_root, tmp_path_factory) -> dict:
    """One file per layout: ``{name: (path, patch embedding)}``."""
    folder = tmp_path_factory.mktemp('sources')
    # A runner checkpoint of a finished one-iteration tiny MAE run.
    _, cfg = tiny_fmnist_config('mae', str(folder))
    cfg.train_dataloader.update(batch_size=8, num_workers=0)
    cfg.train_dataloader.persistent_workers = False
    cfg.train_dataloader.dataset.update(data_prefix=fmnist_root, indices=8)
    cfg.train_cfg.max_epochs = 1
    cfg.work_dir = str(folder / 'run')
    cfg.experiment_name = f'test_{uuid.uuid4().hex[:8]}'
    Runner.from_cfg(cfg).train()
    runner = str(folder / 'run' / 'epoch_1.pth')
    ckpt = torch.load(runner, weights_only=True)  # with the plugin allowlist
    assert 'message_hub' in ckpt and 'optimizer' in ckpt
    patch = ckpt['state_dict'][f'backbone.{PATCH}']

    # mmpretrain's model zoo publishes `meta` and `state_dict` only.
    mae_zoo = str(folder / 'mae_zoo.pth')
    torch.save(
        dict(meta=ckpt['meta'], state_dict=OrderedDict(ckpt['state_dict'])),
        mae_zoo)

    # The runner's own non-tensor state around a BIM model.
    bim = trained_bim()
    ckpt.update(state_dict=bim.state_dict())
    ckpt['meta']['cfg'] = Config(dict(model=BIM_MODEL)).pretty_text
    torch.save(ckpt, folder / 'bim.pth')

    # The official LocalMIM release: model, optimizer, epoch, scaler, args.
    model = official_state_dict()
    params = [torch.nn.Parameter(v.clone()) for v in model.values()]
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    sum(p.sum() for p in params).backward()
    optimizer.step()
    args = argparse.Namespace(
        model='MIM_vit_base_patch16',
        batch_size=256,
        epochs=1600,
        mask_ratio=0.75,
        blr=2e-4,
        lr=None,
        input_size=224,
        device='cuda',
        output_dir='./output',
        seed=0,
        distributed=True,
        dist_url='env://')
    torch.save(
        dict(
            model=model,
            optimizer=optimizer.state_dict(),
            epoch=1599,
            scaler=torch.amp.GradScaler('cpu').state_dict(),
            args=args), folder / 'localmim.pth')
    return dict(
        runner=(runner, patch),
        mae_zoo=(mae_zoo, patch),
        bim=(str(folder / 'bim.pth'), bim.state_dict()[f'backbone.{PATCH}']),
        localmim=(str(folder / 'localmim.pth'),
                  model['patch_embed.proj.weight']))


def legacy_copy(src: str, dst: str) -> str:
    """``src`` plus a harmless object outside the allowlist (a Fraction)."""
    ckpt = torch.load(src, weights_only=True)
    if 'args' in ckpt:
        ckpt['args'].lr_ratio = fractions.Fraction(1, 3)
    else:
        ckpt.setdefault('meta', {})['note'] = fractions.Fraction(1, 3)
    torch.save(ckpt, dst)
    return dst


@pytest.mark.parametrize('tool', list(CASES))
def test_hostile_pickle_is_refused(tool, tmp_path):
    marker = tmp_path / 'executed'
    evil = str(tmp_path / 'evil.pth')
    torch.save(dict(state_dict={'backbone.w': _Evil(str(marker))}), evil)
    (tmp_path / 'out').mkdir()
    with pytest.raises(UnsafeCheckpointError) as info:
        run(tool, evil, tmp_path / 'out')
    message = str(info.value)
    assert evil in message and 'Nothing from it ran' in message
    assert '--unsafe-full-unpickle' in message
    assert 'exec' in str(info.value.__cause__)
    assert not marker.exists()
    assert list((tmp_path / 'out').iterdir()) == []


@pytest.mark.parametrize('tool, layout',
                         [(tool, layout)
                          for tool, (layouts, _) in CASES.items()
                          for layout in layouts])
def test_release_and_runner_layouts_convert(tool, layout, sources, tmp_path):
    src, patch = sources[layout]
    out = run(tool, src, tmp_path)
    # The output holds tensors and plain data only: no allowlist needed.
    assert torch.serialization.get_unsafe_globals_in_checkpoint(out) == []
    ckpt = torch.load(out, weights_only=True)
    state = ckpt.get('state_dict', ckpt.get('model'))
    assert torch.equal(state[CASES[tool][1]], patch)


@pytest.mark.parametrize('tool', list(CASES))
def test_unsafe_full_unpickle_opt_in(tool, sources, tmp_path, capsys):
    src = legacy_copy(sources[CASES[tool][0][0]][0],
                      str(tmp_path / 'legacy.pth'))
    with pytest.raises(UnsafeCheckpointError, match='--unsafe-full') as info:
        run(tool, src, tmp_path)
    assert 'fractions.Fraction' in str(info.value.__cause__)
    out = run(tool, src, tmp_path, '--unsafe-full-unpickle')
    warnings = [
        line for line in capsys.readouterr().err.splitlines()
        if 'WARNING' in line
    ]
    assert len(warnings) == 1 and src in warnings[0]
    assert 'any code' in warnings[0]
    assert torch.serialization.get_unsafe_globals_in_checkpoint(out) == []


def test_command_line_refusal(tmp_path):
    marker = tmp_path / 'executed'
    evil = str(tmp_path / 'evil.pth')
    torch.save(dict(meta=_Evil(str(marker))), evil)
    proc = subprocess.run([
        sys.executable,
        osp.join(TOOLS, 'extract_backbone.py'), evil,
        str(tmp_path / 'out.pth')
    ],
                          env=subprocess_env(),
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode != 0
    assert 'UnsafeCheckpointError' in proc.stderr and evil in proc.stderr
    assert not marker.exists() and not osp.exists(tmp_path / 'out.pth')


def test_tools_test_py_refuses_hostile_pickle(fmnist_root, tmp_path):
    marker = tmp_path / 'executed'
    evil = str(tmp_path / 'evil.pth')
    torch.save(dict(state_dict={'backbone.w': _Evil(str(marker))}), evil)
    config = osp.join(
        REPO_ROOT,
        'configs/mae/benchmarks/vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py')
    proc = subprocess.run([
        sys.executable, 'tools/test.py', config, evil, '--work-dir',
        str(tmp_path / 'work'), '--cfg-options', f'data_root={fmnist_root}',
        'test_dataloader.dataset.indices=8', 'test_dataloader.num_workers=0',
        'model.backbone.init_cfg=None'
    ],
                          cwd=REPO_ROOT,
                          env=subprocess_env(),
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode != 0
    assert 'UnsafeCheckpointError' in proc.stderr and evil in proc.stderr
    assert not marker.exists()


def test_visualizer_refuses_hostile_pickle(tmp_path, monkeypatch):
    marker = tmp_path / 'executed'
    evil = str(tmp_path / 'evil.pth')
    torch.save(dict(state_dict={'backbone.w': _Evil(str(marker))}), evil)
    spec = importlib.util.spec_from_file_location(
        'visualize_reconstruction',
        osp.join(REPO_ROOT, 'tools/visualization/visualize_reconstruction.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    monkeypatch.setattr(sys, 'argv', [
        'visualize_reconstruction.py', DEMO_CONFIG, evil,
        str(tmp_path), '--out',
        str(tmp_path / 'out')
    ])
    with pytest.raises(UnsafeCheckpointError, match=evil):
        tool.main()
    assert not marker.exists() and not osp.exists(tmp_path / 'out')
