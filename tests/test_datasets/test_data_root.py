# Copyright (c) OpenMMLab. All rights reserved.
"""``--cfg-options data_root=DIR`` reaches every Fashion-MNIST dataset."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmpretrain.registry import DATASETS

import mim_plugins  # noqa: F401
from helpers import REPO_ROOT
from mim_plugins.datasets import apply_data_root

FMNIST_CONFIGS = sorted(
    f for f in glob.glob(
        osp.join(REPO_ROOT, 'configs', '**', '*fashion-mnist*.py'),
        recursive=True) if '_base_' not in f)


def fmnist_datasets(node):
    """Every FashionMNIST dataset dict under ``node``."""
    if isinstance(node, dict):
        if node.get('type') in ('FashionMNIST', 'mmpretrain.FashionMNIST'):
            yield node
        for value in node.values():
            yield from fmnist_datasets(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from fmnist_datasets(value)


def test_every_fashion_mnist_config_found():
    # pre-training configs of the five methods and their fine-tune and
    # linear-probe configs
    assert len(FMNIST_CONFIGS) >= 20
    assert sum('/benchmarks/' in f for f in FMNIST_CONFIGS) == 11


@pytest.mark.parametrize(
    'config', FMNIST_CONFIGS, ids=lambda f: osp.relpath(f, REPO_ROOT))
def test_data_root_override_reaches_every_split(config, tmp_path):
    cfg = Config.fromfile(config)
    datasets = list(fmnist_datasets(cfg.to_dict()))
    # train (+ val/test or the frozen-feature evaluation splits)
    assert len(datasets) >= 2
    # one place: every split reads the path of fashion-mnist_root.py
    assert cfg.data_root == cfg.default_data_root == 'data/fashion-mnist'
    assert {d['data_prefix'] for d in datasets} == {'data/fashion-mnist'}

    root = str(tmp_path / 'fmnist')
    cfg.merge_from_dict({'data_root': root})
    apply_data_root(cfg)
    datasets = list(fmnist_datasets(cfg.to_dict()))
    assert {d['data_prefix'] for d in datasets} == {root}
    assert cfg.default_data_root == root
    # a second call changes nothing
    assert apply_data_root(cfg).to_dict() == cfg.to_dict()


def test_explicit_data_prefix_kept(tmp_path):
    cfg = Config.fromfile(FMNIST_CONFIGS[0])
    cfg.merge_from_dict({
        'data_root':
        str(tmp_path / 'a'),
        'train_dataloader.dataset.data_prefix':
        str(tmp_path / 'b')
    })
    apply_data_root(cfg)
    assert cfg.train_dataloader.dataset.data_prefix == str(tmp_path / 'b')
    others = [
        d['data_prefix'] for d in fmnist_datasets(cfg.to_dict())
        if d['data_prefix'] != str(tmp_path / 'b')
    ]
    assert others and set(others) == {str(tmp_path / 'a')}


@pytest.mark.parametrize('config', [
    'configs/mae/mae_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py',
    'configs/mae/benchmarks/vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py'
])
def test_fmnist_root_env_reaches_every_split(config, fmnist_root,
                                             monkeypatch):
    """FMNIST_ROOT moves every split when the file is read, so tools that do
    not call apply_data_root (mmpretrain's own train.py) honour it too."""
    monkeypatch.setenv('FMNIST_ROOT', fmnist_root)
    cfg = Config.fromfile(osp.join(REPO_ROOT, config))
    datasets = list(fmnist_datasets(cfg.to_dict()))
    assert {d['data_prefix'] for d in datasets} == {fmnist_root}
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    assert len(dataset) == 320  # the fake set, not the real 60000
