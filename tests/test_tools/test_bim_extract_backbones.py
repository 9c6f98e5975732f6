# Copyright (c) OpenMMLab. All rights reserved.
"""tools/model_converters/bim_extract_backbones.py: one ViT per boundary,
tensors only, same features as the BIM encoder's first k layers."""
import copy
import os.path as osp
import subprocess
import sys

import pytest
import torch
from helpers import (REPO_ROOT, TINY_ARCH, TINY_HEAD, TINY_NECK,
                      subprocess_env, tiny_backbone)
from mmengine.config import Config
from mmpretrain.models import VisionTransformer
from mmpretrain.registry import MODELS

import mim_plugins  # noqa: F401

TOOL = osp.join(REPO_ROOT, 'tools/model_converters/bim_extract_backbones.py')
ARCH = copy.deepcopy(TINY_ARCH)
MODEL = dict(
    type='BIM',
    backbone=tiny_backbone('BIMViT', block_boundaries=[1, 3, 4]),
    neck=copy.deepcopy(TINY_NECK),
    head=copy.deepcopy(TINY_HEAD))


def trained_bim():
    torch.manual_seed(0)
    model = MODELS.build(MODEL)
    model.init_weights()
    # make every block norm distinct from the default init
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def run_tool(*args):
    return subprocess.run([sys.executable, TOOL, *map(str, args)],
                          env=subprocess_env(),
                          capture_output=True,
                          text=True,
                          timeout=120)


def test_exported_depths_match_encoder_prefix(tmp_path):
    model = trained_bim()
    ckpt = tmp_path / 'bim.pth'
    cfg = Config(dict(model=MODEL))
    torch.save(
        dict(state_dict=model.state_dict(), meta=dict(cfg=cfg.pretty_text)),
        ckpt)
    out = tmp_path / 'out'
    res = run_tool(ckpt, out)  # boundaries read from the stored config
    assert res.returncode == 0, res.stderr

    x = torch.randn(2, 1, 16, 16)
    for k, depth in enumerate([1, 3, 4]):
        saved = torch.load(
            out / f'bim_backbone_depth{depth}.pth', weights_only=True)
        assert list(saved) == ['state_dict']
        state = saved['state_dict']
        assert all(key.startswith('backbone.') for key in state)
        vit = VisionTransformer(
            arch=dict(ARCH, num_layers=depth),
            img_size=16,
            patch_size=4,
            in_channels=1,
            out_type='raw')
        vit.load_state_dict({key[9:]: v for key, v in state.items()})
        vit.eval()
        with torch.no_grad():
            feats = vit(x)[0]
            ref = model.backbone.forward_prefix(x, k + 1)
            # first k layers by hand: un-masked stem, layers, block norm
            tokens = model.backbone.patch_embed(x)[0]
            tokens = torch.cat(
                [model.backbone.cls_token.expand(2, -1, -1), tokens], 1)
            tokens = tokens + model.backbone.pos_embed
            for i in range(depth):
                tokens = model.backbone.layers[i](tokens)
            tokens = model.backbone.block_norm(k)(tokens)
        torch.testing.assert_close(feats, ref, rtol=0, atol=0)
        torch.testing.assert_close(feats, tokens)
    # the shallow export has a different final norm than the full model
    d1 = torch.load(out / 'bim_backbone_depth1.pth', weights_only=True)
    assert not torch.equal(d1['state_dict']['backbone.ln1.weight'],
                           model.state_dict()['backbone.ln1.weight'])


def load_tool():
    import importlib.util
    spec = importlib.util.spec_from_file_location('bim_extract', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_wrong_or_missing_boundaries(tmp_path, monkeypatch):
    tool = load_tool()
    model = trained_bim()
    ckpt = tmp_path / 'bim.pth'
    torch.save(dict(state_dict=model.state_dict()), ckpt)

    def main(*args):
        monkeypatch.setattr(
            sys, 'argv',
            ['x', str(ckpt), str(tmp_path / 'out'), *args])
        tool.main()

    with pytest.raises(ValueError, match='--block-boundaries'):
        main()
    with pytest.raises(ValueError, match='block_boundaries'):
        main('--block-boundaries', '2', '4')
    main('--block-boundaries', '1', '3', '4')
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == [
        f'bim_backbone_depth{d}.pth' for d in (1, 3, 4)
    ]
    with pytest.raises(ValueError, match='not a BIM checkpoint'):
        tool.extract_backbones({'neck.0.x': torch.zeros(1)}, [4])


def test_exported_depth_fine_tunes(tmp_path):
    """The benchmark config loads an exported depth and trains on it."""
    from mmengine.registry import DefaultScope
    tool = load_tool()
    cfg = Config.fromfile(f'{REPO_ROOT}/configs/bim/'
                          'bim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        bim = MODELS.build(cfg.model)
    ckpt = tmp_path / 'depth6.pth'
    state = tool.extract_backbones(bim.state_dict(), [3, 6, 9, 12])[6]
    torch.save(dict(state_dict=state), ckpt)

    ft = Config.fromfile(f'{REPO_ROOT}/configs/bim/benchmarks/'
                         'vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py')
    ft.model.backbone.arch.num_layers = 6
    ft.model.backbone.init_cfg.checkpoint = str(ckpt)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        clf = MODELS.build(ft.model)
        clf.init_weights()
    assert len(clf.backbone.layers) == 6
    torch.testing.assert_close(clf.backbone.layers[5].attn.qkv.weight,
                               bim.backbone.layers[5].attn.qkv.weight)
    from mmpretrain.structures import DataSample
    samples = [DataSample().set_gt_label(i) for i in range(2)]
    losses = clf.loss(torch.randn(2, 1, 32, 32), samples)
    losses['loss'].backward()
    assert clf.backbone.layers[0].attn.qkv.weight.grad is not None


if __name__ == '__main__':
    pytest.main([__file__])
