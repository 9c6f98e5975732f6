# Copyright (c) OpenMMLab. All rights reserved.
"""The plugin used as a library: a wheel built from a clean copy of the
repository, installed non-editable next to the test environment's stack and
used from another directory with ``mim`` (no network)."""
import glob
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest

from helpers import REPO_ROOT, VENV_BIN, make_fake_fmnist

CONFIG = 'mae_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist'


def git(*args: str) -> str:
    return subprocess.run(['git', '-C', REPO_ROOT, *args],
                          capture_output=True,
                          text=True,
                          check=True).stdout


def checkout_state() -> tuple:
    """What a build could change in the checkout: git's view and ``.mim``."""
    mim = osp.join(REPO_ROOT, 'mim_plugins', '.mim')
    entries = sorted((name, osp.islink(osp.join(mim, name)))
                     for name in os.listdir(mim)) if osp.isdir(mim) else None
    return git('status', '--porcelain'), entries


def clean_copy(dst: str) -> None:
    """The files a clone would hold: tracked and not ignored ones."""
    files = git('ls-files', '-z', '--cached', '--others',
                '--exclude-standard').split('\0')
    for rel in filter(None, files):
        src = osp.join(REPO_ROOT, rel)
        if osp.isfile(src):  # skip deleted files
            os.makedirs(osp.dirname(osp.join(dst, rel)), exist_ok=True)
            shutil.copy2(src, osp.join(dst, rel))


def run(args: list, cwd: str, env: dict, timeout: int = 300) -> str:
    proc = subprocess.run(
        args,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc.stdout


@pytest.mark.skipif(
    shutil.which('git') is None or not osp.exists(osp.join(REPO_ROOT, '.git')),
    reason='needs the git checkout (a clone or a worktree)')
def test_installed_wheel_from_another_directory(tmp_path):
    before = checkout_state()
    src, target = str(tmp_path / 'src'), str(tmp_path / 'site')
    work = str(tmp_path / 'work')
    os.makedirs(work)
    clean_copy(src)
    pip = [sys.executable, '-m', 'pip', '--disable-pip-version-check']
    env = dict(os.environ, PIP_NO_INDEX='1', OMP_NUM_THREADS='1')
    env['PATH'] = VENV_BIN + os.pathsep + env.get('PATH', '')
    env.pop('PYTHONPATH', None)

    # build from the clean copy, install without dependencies: the stack
    # comes from the test environment
    run([
        *pip, 'wheel', '--no-deps', '--no-build-isolation', '-w', 'dist', '.'
    ], src, env)
    wheel, = glob.glob(osp.join(src, 'dist', 'mim_plugins-*.whl'))
    run([*pip, 'install', '--no-deps', '--target', target, wheel], work, env)
    assert osp.isfile(
        osp.join(target, 'mim_plugins', '.mim', 'tools', 'train.py'))

    # the installed copy, not the checkout, is imported and found by mim
    env['PYTHONPATH'] = target
    out = run([
        sys.executable, '-c',
        'import mim_plugins; from mim.utils.utils import get_installed_path;'
        "print(mim_plugins.__file__); print(get_installed_path('mim_plugins'))"
    ], work, env)
    module, pkg_root = out.strip().splitlines()[-2:]
    assert module == osp.join(target, 'mim_plugins', '__init__.py')
    assert pkg_root == osp.join(target, 'mim_plugins')

    mim = osp.join(VENV_BIN, 'mim')
    out = run([mim, 'search', 'mim_plugins'], work, env)
    assert f'config id: {CONFIG}' in out
    assert 'config id: bim_vit-base-p16_8xb512-amp-coslr-400e_in1k' in out
    # the model zoo of the installed copy (its .mim/model-index.yml)
    out = run([
        sys.executable, '-c', 'from mim_plugins.apis import list_models; '
        "print(list_models('bim_vit-tiny'))"
    ], work, env)
    assert 'bim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist' in out

    # one iteration; the config is found by `<config id>.py`, the data by
    # data_root (nothing under work/data)
    data = make_fake_fmnist(str(tmp_path / 'fmnist'), n_train=32, n_test=16)
    out = run([
        mim, 'train', 'mim_plugins', f'{CONFIG}.py', '--work-dir', 'run',
        '--cfg-options', f'data_root={data}', 'train_dataloader.batch_size=32',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False', 'train_cfg.max_epochs=1'
    ], work, env)
    installed_config = osp.join(target, 'mim_plugins', '.mim', 'configs',
                                'mae', f'{CONFIG}.py')
    assert installed_config in out
    assert osp.join(target, 'mim_plugins', '.mim', 'tools', 'train.py') in out
    assert 'Epoch(train) [1][1/1]' in out
    assert osp.isfile(osp.join(work, 'run', 'epoch_1.pth'))

    # a fine-tune config by its installed path (its file name repeats in
    # every method's benchmarks/), from that checkpoint; data_root reaches
    # the validation split too
    finetune = osp.join(target, 'mim_plugins', '.mim', 'configs', 'mae',
                        'benchmarks',
                        'vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py')
    out = run([
        mim, 'train', 'mim_plugins', finetune, '--work-dir', 'ft',
        '--cfg-options', f'data_root={data}',
        'model.backbone.init_cfg.checkpoint=run/epoch_1.pth',
        'train_dataloader.batch_size=32', 'train_dataloader.num_workers=0',
        'val_dataloader.num_workers=0', 'train_cfg.max_epochs=1'
    ], work, env)
    assert 'Epoch(train) [1][1/1]' in out
    assert 'Epoch(val) [1][1/1]' in out and 'accuracy/top1' in out

    # a tool of the installed package: the demo finds its default config
    # under .mim/configs and reads the data from --data-root
    out = run([
        mim, 'run', 'mim_plugins', 'run_demo', '--data-root', data,
        '--work-dir', 'demo', '--methods', 'mae', '--budget', '0.5',
        '--train-samples', '32', '--eval-points', '1', '--eval-train-samples',
        '32', '--eval-test-samples', '16', '--knn-k', '5', '--probe-epochs',
        '1', '--finetune-samples', '0', '--cfg-options',
        'train_dataloader.batch_size=16', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False'
    ], work, env)
    assert osp.join(target, 'mim_plugins', '.mim', 'tools',
                    'run_demo.py') in out
    with open(osp.join(work, 'demo', 'demo_results.json')) as f:
        res = json.load(f)
    assert res['runs'][0]['config'] == osp.join(
        target, 'mim_plugins', '.mim', 'configs', 'mae',
        'mae_vit-mini-p4_1xb256-coslr-10e_fashion-mnist.py')
    assert res['runs'][0]['train_images'] == 32
    assert not osp.exists(osp.join(work, 'data'))

    # nothing was left in the checkout
    assert checkout_state() == before
