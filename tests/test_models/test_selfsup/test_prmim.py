# Copyright (c) OpenMMLab. All rights reserved.
"""Tests of the PR-MIM algorithm, head and configs (the FLOP table of
docs/experiments/prmim.md: tools/analysis_tools/prmim_flops.py)."""
import copy
import importlib.util
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS

import mim_plugins  # noqa: F401  (registers the plugin modules)
from mim_plugins.benchmarks import train_step_flops
from mim_plugins.models.heads import PRMIMPretrainHead

REPO = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
TINY_CFG = osp.join(
    REPO, 'configs/prmim/'
    'prmim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py')
VITB_CFG = osp.join(
    REPO, 'configs/prmim/'
    'prmim_vit-base-p16_8xb512-amp-coslr-400e_in1k.py')

# 16-px single-channel images, patch 2 -> 8 x 8 = 64 patches, 16 visible
SMALL = dict(
    type='PRMIM',
    backbone=dict(
        type='MAEViT',
        arch=dict(
            embed_dims=48, num_layers=2, num_heads=2, feedforward_channels=96),
        img_size=16,
        patch_size=2,
        patch_cfg=dict(in_channels=1),
        mask_ratio=0.75),
    neck=dict(
        type='PRMIMPretrainDecoder',
        num_patches=64,
        patch_size=2,
        in_chans=1,
        embed_dim=48,
        decoder_embed_dim=32,
        decoder_depth=2,
        decoder_num_heads=2,
        mlp_ratio=2,
        throw_ratio=0.5),
    head=dict(
        type='PRMIMPretrainHead',
        norm_pix=True,
        patch_size=2,
        in_channels=1,
        loss=dict(type='PixelReconstructionLoss', criterion='L2')))


def _cfg(base=SMALL, **neck):
    cfg = copy.deepcopy(base)
    cfg['neck'].update(neck)
    return cfg


def _as_mae(cfg):
    """The same model as plain mmpretrain MAE."""
    cfg = copy.deepcopy(cfg)
    cfg['type'] = 'MAE'
    cfg['neck']['type'] = 'MAEPretrainDecoder'
    for key in ('throw_ratio', 'sampling', 'thrown_path', 'num_waves', 'k'):
        cfg['neck'].pop(key, None)
    cfg['head']['type'] = 'MAEPretrainHead'
    cfg['head'].pop('thrown_loss_weight', None)
    return cfg


def _build(cfg, state_dict=None):
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    if state_dict is None:
        # MAE's own initialisation (sin-cos position embeddings, ...)
        model.backbone.init_weights()
        model.neck.init_weights()
    else:
        model.load_state_dict(state_dict)
    return model


def _images(batch=2, size=16, channels=1):
    return torch.randn(
        batch,
        channels,
        size,
        size,
        generator=torch.Generator().manual_seed(0))


def _total(losses):
    """What mmengine's ``parse_losses`` optimizes."""
    return sum(v for k, v in losses.items() if 'loss' in k)


def _vitb_cfg(throw_ratio=0.5, thrown_path='progressive'):
    return dict(
        type='PRMIM',
        backbone=dict(type='MAEViT', arch='b', patch_size=16, mask_ratio=0.75),
        neck=dict(
            type='PRMIMPretrainDecoder',
            num_patches=196,
            patch_size=16,
            in_chans=3,
            embed_dim=768,
            decoder_embed_dim=512,
            decoder_depth=8,
            decoder_num_heads=16,
            mlp_ratio=4.,
            throw_ratio=throw_ratio,
            thrown_path=thrown_path),
        head=dict(
            type='PRMIMPretrainHead',
            norm_pix=True,
            patch_size=16,
            loss=dict(type='PixelReconstructionLoss', criterion='L2')))


def _tiny_cfg(throw_ratio=0.5, thrown_path='progressive'):
    model = Config.fromfile(TINY_CFG).model.to_dict()
    model.pop('init_cfg', None)
    return _cfg(model, throw_ratio=throw_ratio, thrown_path=thrown_path)


# --------------------------------------------------------------------------
# algorithm
# --------------------------------------------------------------------------
def test_loss_keys_and_backward():
    model = _build(SMALL)
    losses = model.loss(_images(), None)
    assert set(losses) == {
        'loss_kept', 'loss_thrown', 'mse_kept', 'mse_thrown'
    }
    assert not losses['mse_kept'].requires_grad
    total = _total(losses)
    assert torch.isfinite(total)
    total.backward()
    assert model.backbone.layers[0].attn.qkv.weight.grad.abs().sum() > 0


def test_throw_ratio_zero_equals_mae_loss():
    model = _build(_cfg(throw_ratio=0.))
    mae = _build(_as_mae(_cfg(throw_ratio=0.)), model.state_dict())
    images = _images(batch=3)
    torch.manual_seed(1)  # same random mask for both
    losses = model.loss(images, None)
    torch.manual_seed(1)
    ref = mae.loss(images, None)['loss']
    assert set(losses) == {'loss_kept', 'mse_kept'}
    assert torch.equal(losses['loss_kept'], ref)


def test_thrown_path_none_supervises_kept_tokens_only():
    model = _build(_cfg(thrown_path='none'))
    images = _images()
    torch.manual_seed(1)
    losses = model.loss(images, None)
    assert set(losses) == {'loss_kept', 'mse_kept'}

    torch.manual_seed(1)
    latent, mask, ids_restore = model.backbone(images)
    pred, kept, thrown = model.neck(latent, ids_restore)
    target = model.head.construct_target(images)
    per_token = ((pred - target)**2).mean(-1)
    ref = (per_token * kept).sum() / kept.sum()
    torch.testing.assert_close(losses['loss_kept'], ref)
    assert torch.equal(kept + thrown, mask)


def test_gradient_reaches_decoder_through_thrown_path():
    model = _build(SMALL)
    model.loss(_images(), None)['loss_thrown'].backward()
    neck = model.neck
    for module in (neck.decoder_blocks[0], neck.decoder_blocks[-1],
                   neck.decoder_pred, model.backbone.layers[-1]):
        assert any(p.grad is not None and p.grad.abs().sum() > 0
                   for p in module.parameters())
    assert neck.mask_token.grad.abs().sum() > 0


def test_autocast_bf16():
    model = _build(SMALL)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = model.loss(_images(), None)
    total = _total(losses)
    assert torch.isfinite(total)
    total.backward()
    assert model.neck.decoder_pred.weight.grad.abs().sum() > 0


# --------------------------------------------------------------------------
# head
# --------------------------------------------------------------------------
def _hand_loss(pred, target_img, kept, thrown, weight):
    """Norm-pix MSE of kept + weighted thrown tokens, in plain Python."""
    # 4 x 4 image, patch 2 -> 4 patches of 4 pixels, row-major
    errs, n = [], 0
    for b, img in enumerate(target_img[:, 0].tolist()):
        row = []
        for pi in range(2):
            for pj in range(2):
                pix = [
                    img[2 * pi + a][2 * pj + c] for a in range(2)
                    for c in range(2)
                ]
                mean = sum(pix) / 4
                var = sum((v - mean)**2 for v in pix) / 3  # unbiased
                tgt = [(v - mean) / (var + 1e-6)**.5 for v in pix]
                p = pred[b, 2 * pi + pj].tolist()
                row.append(sum((a - t)**2 for a, t in zip(p, tgt)) / 4)
        errs.append(row)
    k = [(b, j) for b in range(2) for j in range(4) if kept[b][j]]
    t = [(b, j) for b in range(2) for j in range(4) if thrown[b][j]]
    sum_k = sum(errs[b][j] for b, j in k)
    sum_t = sum(errs[b][j] for b, j in t)
    n = len(k) + len(t)
    return dict(
        total=(sum_k + weight * sum_t) / n,
        mse_kept=sum_k / len(k),
        mse_thrown=sum_t / len(t))


@pytest.mark.parametrize('weight', [1.0, 0.5, 0.])
def test_head_loss_against_hand_computed_reference(weight):
    head = PRMIMPretrainHead(
        loss=dict(type='PixelReconstructionLoss', criterion='L2'),
        norm_pix=True,
        patch_size=2,
        in_channels=1,
        thrown_loss_weight=weight)
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(2, 4, 4, generator=g)
    images = torch.randn(2, 1, 4, 4, generator=g)
    kept = [[0, 1, 0, 0], [1, 0, 0, 0]]
    thrown = [[0, 0, 1, 1], [0, 1, 1, 0]]
    losses = head.loss(pred, images,
                       torch.tensor(kept).float(),
                       torch.tensor(thrown).float())
    ref = _hand_loss(pred, images, kept, thrown, weight)
    assert abs(_total(losses).item() - ref['total']) < 1e-5
    assert abs(losses['mse_kept'].item() - ref['mse_kept']) < 1e-5
    assert abs(losses['mse_thrown'].item() - ref['mse_thrown']) < 1e-5

    # no thrown tokens supervised: MAEPretrainHead's loss over kept ones
    only_kept = head.loss(pred, images, torch.tensor(kept).float())
    assert set(only_kept) == {'loss_kept', 'mse_kept'}
    assert abs(only_kept['loss_kept'].item() - ref['mse_kept']) < 1e-5


def test_head_bad_weight():
    with pytest.raises(ValueError, match='`thrown_loss_weight`'):
        PRMIMPretrainHead(
            loss=dict(type='PixelReconstructionLoss', criterion='L2'),
            thrown_loss_weight=-1.)


# --------------------------------------------------------------------------
# cost of the thrown path
# --------------------------------------------------------------------------
@pytest.mark.parametrize('shape', ['tiny', 'vit-b'])
def test_thrown_path_under_one_percent_of_train_step_flops(shape):
    if shape == 'tiny':
        cfg, images = _tiny_cfg, _images(batch=2, size=32)
    else:
        cfg, images = _vitb_cfg, _images(batch=1, size=224, channels=3)
    with_path = _build(cfg())
    without = _build(cfg(thrown_path='none'), with_path.state_dict())
    step, counts = train_step_flops(with_path, images)
    step_none, _ = train_step_flops(without, images)
    # attention is counted
    assert any('scaled_dot_product' in str(op) for op in counts['Global'])
    thrown_path = step - step_none
    assert 0 < thrown_path < 0.01 * step
    if shape == 'vit-b':
        # partial decoding saves more than a quarter of MAE's step
        mae = _build(_as_mae(cfg()), with_path.state_dict())
        step_mae, _ = train_step_flops(mae, images)
        assert step < 0.75 * step_mae


# --------------------------------------------------------------------------
# configs and build-time checks
# --------------------------------------------------------------------------
def test_tiny_config_token_counts():
    model = _build(_tiny_cfg())
    seen = {}

    def record(module, args):
        seen['shape'] = tuple(args[0].shape)

    hook = model.neck.decoder_blocks[0].register_forward_pre_hook(record)
    torch.manual_seed(0)
    latent, mask, ids_restore = model.backbone(_images(size=32))
    _, kept, thrown = model.neck(latent, ids_restore)
    hook.remove()
    assert latent.shape[1] == 1 + 16  # visible
    assert kept.sum(1).tolist() == [16, 16]
    assert thrown.sum(1).tolist() == [32, 32]
    assert seen['shape'] == (2, 1 + 16 + 16, 128)


@pytest.mark.parametrize('prefix,throw_ratio,num_thrown,num_kept', [
    ('prmim-t025', 0.25, 49, 98),
    ('prmim', 0.5, 98, 49),
    ('prmim-t065', 0.65, 127, 20),
])
def test_vitb_configs(prefix, throw_ratio, num_thrown, num_kept):
    path = VITB_CFG.replace('/prmim_vit-base', f'/{prefix}_vit-base')
    cfg = Config.fromfile(path)
    assert cfg.model.type == 'PRMIM'
    assert cfg.model.neck.throw_ratio == throw_ratio
    assert cfg.model.neck.sampling == 'furthest'
    assert cfg.model.neck.thrown_path == 'progressive'
    assert cfg.model.backbone.mask_ratio == 0.75
    model = MODELS.build(cfg.model)
    assert model.neck.num_thrown() == num_thrown
    assert 196 - 49 - model.neck.num_thrown() == num_kept
    assert type(model.head).__name__ == 'PRMIMPretrainHead'


@pytest.mark.parametrize('prefix,neck', [
    ('prmim-nothrown', dict(thrown_path='none')),
    ('prmim-random', dict(sampling='random')),
    ('prmim-t025', dict(throw_ratio=0.25)),
    ('prmim-t065', dict(throw_ratio=0.65)),
])
def test_tiny_ablation_configs(prefix, neck):
    base = Config.fromfile(TINY_CFG)
    cfg = Config.fromfile(
        TINY_CFG.replace('/prmim_vit-tiny', f'/{prefix}_vit-tiny'))
    expected = copy.deepcopy(base.model.to_dict())
    expected['neck'].update(neck)
    assert cfg.model.to_dict() == expected
    # only the model differs from the main tiny config
    assert cfg.train_dataloader == base.train_dataloader
    assert cfg.train_cfg == base.train_cfg
    MODELS.build(cfg.model)


def test_fashion_mnist_benchmark_finds_the_main_configs():
    # tools/benchmarks/fashion_mnist.py takes the one
    # configs/prmim/prmim_<family>-*_fashion-mnist.py; ablations
    # (prmim-t025_..., prmim-random_...) must not match it
    spec = importlib.util.spec_from_file_location(
        'fashion_mnist', osp.join(REPO, 'tools/benchmarks/fashion_mnist.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert osp.samefile(tool.find_config('prmim', 'vit-tiny'), TINY_CFG)
    assert tool.find_config('prmim').endswith(
        'configs/prmim/prmim_vit-mini-p4_1xb256-coslr-10e_fashion-mnist.py')


@pytest.mark.parametrize('neck,match', [
    (dict(throw_ratio=0.75), '`throw_ratio`.*mask_ratio'),
    (dict(throw_ratio=0.9), '`throw_ratio`.*mask_ratio'),
    (dict(k=33), '`k`'),
    (dict(num_patches=49), '`neck.num_patches`'),
])
def test_bad_config_at_build(neck, match):
    with pytest.raises(ValueError, match=match):
        MODELS.build(_cfg(**neck))


def test_k_only_checked_with_thrown_path():
    # 32 decoded patch tokens: k=32 is the largest k of the thrown path
    assert MODELS.build(_cfg(k=32)).neck.k == 32
    with pytest.raises(ValueError, match='`k`'):
        MODELS.build(_cfg(k=33))
    # without the thrown path k is unused, so any k builds
    assert MODELS.build(_cfg(k=33, thrown_path='none')).neck.k == 33


def test_wrong_parts_rejected():
    cfg = _cfg()
    mae = _as_mae(cfg)
    with pytest.raises(TypeError, match='neck.type'):
        MODELS.build(dict(cfg, neck=mae['neck']))
    with pytest.raises(TypeError, match='head.type'):
        MODELS.build(dict(cfg, head=mae['head']))
