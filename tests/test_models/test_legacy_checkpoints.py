# Copyright (c) OpenMMLab. All rights reserved.
"""State dicts written before the decoders shared one loss interface still
load (strictly) and give the same losses.

``fixtures/tiny_models_52f78a4.pth`` holds a tiny model of every algorithm
and decoder (PR-MIM, BIM with MAE and PR-MIM decoders, LocalMIM on ViT and
Swin, MixMIM with and without PR-MIM) and its losses, written by
``legacy_models.py`` at commit 52f78a4.
"""
import os.path as osp

import pytest
import torch
from legacy_models import MODELS_CFGS, build, losses
from mmengine.runner.checkpoint import load_checkpoint

import mim_plugins  # noqa: F401

FIXTURE = osp.join(
    osp.dirname(osp.abspath(__file__)), 'fixtures', 'tiny_models_52f78a4.pth')


@pytest.fixture(scope='module')
def fixture():
    return torch.load(FIXTURE, map_location='cpu')


@pytest.mark.parametrize('name', list(MODELS_CFGS))
def test_old_state_dict_loads_and_gives_the_same_losses(
        name, fixture, tmp_path):
    old = fixture[name]
    model = build(name, seed=123)  # other weights than the old ones
    # as a runner checkpoint: mmengine's loader, strict key matching
    path = str(tmp_path / 'old.pth')
    torch.save(dict(meta=dict(), state_dict=old['state_dict']), path)
    load_checkpoint(model, path, map_location='cpu', strict=True)
    new_state = model.state_dict()
    mapped = set()
    for key, value in old['state_dict'].items():
        # LocalMIMSwinDecoder is now mmpretrain's MAEPretrainDecoder: its
        # norm is `ln1` and its position embedding has a [CLS] entry
        new_key = key.replace('.decoder_norm.', '.ln1.')
        new = new_state[new_key]
        if new.shape != value.shape:
            assert key.endswith('decoder_pos_embed')
            assert not new[:, 0].any()
            new = new[:, 1:]
        torch.testing.assert_close(new, value)
        mapped.add(new_key)
    assert mapped == set(new_state)
    new = losses(model, name)
    assert list(new) == list(old['losses'])  # same names, same order
    for key, value in old['losses'].items():
        torch.testing.assert_close(new[key], value, rtol=1e-5, atol=1e-6)
