# Copyright (c) OpenMMLab. All rights reserved.
"""``tools/setup_env.sh --mim-links``: the ``.mim`` check and repair, run in a
temporary copy of the layout (never on this checkout)."""
import os
import os.path as osp
import shutil
import subprocess

from helpers import REPO_ROOT


def make_layout(root: str) -> None:
    """A checkout-like folder whose ``mim_plugins/.mim`` is stale."""
    os.makedirs(osp.join(root, 'tools'))
    shutil.copy(
        osp.join(REPO_ROOT, 'tools', 'setup_env.sh'),
        osp.join(root, 'tools', 'setup_env.sh'))
    with open(osp.join(root, 'tools', 'train.py'), 'w') as f:
        f.write('# new train.py\n')
    os.makedirs(osp.join(root, 'configs', 'mae'))
    with open(osp.join(root, 'configs', 'mae', 'a.py'), 'w') as f:
        f.write('x = 2\n')
    with open(osp.join(root, 'model-index.yml'), 'w') as f:
        f.write('Import: []\n')
    mim = osp.join(root, 'mim_plugins', '.mim')
    # what `pip wheel .` in a checkout used to leave: frozen copies ...
    os.makedirs(osp.join(mim, 'configs', 'mae'))
    with open(osp.join(mim, 'configs', 'mae', 'a.py'), 'w') as f:
        f.write('x = 1\n')
    with open(osp.join(mim, 'model-index.yml'), 'w') as f:
        f.write('Import: [old]\n')
    # ... and a link to the wrong place
    os.makedirs(osp.join(root, 'elsewhere'))
    os.symlink('../../elsewhere', osp.join(mim, 'tools'))


def run_links_step(root: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, MIM_PLUGINS_CACHE=osp.join(root, 'cache'))
    return subprocess.run(
        ['bash',
         osp.join(root, 'tools', 'setup_env.sh'), '--mim-links'],
        env=env,
        capture_output=True,
        text=True,
        timeout=60)


def test_mim_links_repaired(tmp_path):
    root = str(tmp_path / 'checkout')
    make_layout(root)
    mim = osp.join(root, 'mim_plugins', '.mim')

    proc = run_links_step(root)
    assert proc.returncode == 0, proc.stderr
    assert 'mim-links      done' in proc.stdout, proc.stdout
    for name in ('tools', 'configs', 'model-index.yml'):
        dst = osp.join(mim, name)
        assert osp.islink(dst), name
        assert os.readlink(dst) == f'../../{name}'
        assert osp.realpath(dst) == osp.realpath(osp.join(root, name))
    # mim now reads the checkout's current files
    with open(osp.join(mim, 'configs', 'mae', 'a.py')) as f:
        assert f.read() == 'x = 2\n'
    assert osp.isfile(osp.join(mim, 'tools', 'train.py'))
    with open(osp.join(root, 'build', 'setup-logs', 'mim-links.log')) as f:
        log = f.read()
    assert 'mim_plugins/.mim/configs is not a link' in log
    assert 'mim_plugins/.mim/tools is not a link' in log
    # the checkout's own files are untouched
    with open(osp.join(root, 'model-index.yml')) as f:
        assert f.read() == 'Import: []\n'

    # a second run finds the links in place and changes nothing
    proc = run_links_step(root)
    assert proc.returncode == 0, proc.stderr
    assert 'mim-links      already done' in proc.stdout, proc.stdout


def test_mim_links_created_when_missing(tmp_path):
    root = str(tmp_path / 'checkout')
    make_layout(root)
    shutil.rmtree(osp.join(root, 'mim_plugins', '.mim'))
    proc = run_links_step(root)
    assert proc.returncode == 0, proc.stderr
    assert osp.islink(osp.join(root, 'mim_plugins', '.mim', 'configs'))
