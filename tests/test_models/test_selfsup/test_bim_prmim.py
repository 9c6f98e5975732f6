# Copyright (c) OpenMMLab. All rights reserved.
"""BIM with PR-MIM partial decoders: exactness, token counts, isolation."""
import copy
import os.path as osp
from typing import List, Union

import pytest
import torch
from helpers import REPO_ROOT, TINY_ARCH, TINY_HEAD, TINY_NECK
from mmengine.config import Config
from mmpretrain.registry import MODELS

import mim_plugins  # noqa: F401
from mim_plugins.engine.optim_wrappers import BIMOptimWrapperConstructor

# 16-px images, 16 patches, mask 0.75: 4 visible and 12 masked per image
PRMIM_NECK = dict(
    copy.deepcopy(TINY_NECK),
    type='PRMIMPretrainDecoder',
    throw_ratio=0.5,
    num_waves=2,
    k=4)
PRMIM_HEAD = dict(copy.deepcopy(TINY_HEAD), type='PRMIMPretrainHead')


def prmim_neck(throw_ratio: float = 0.5, **kwargs) -> dict:
    return dict(copy.deepcopy(PRMIM_NECK), throw_ratio=throw_ratio, **kwargs)


def build_bim(neck: Union[dict, List[dict]],
              head: Union[dict, List[dict]],
              block_boundaries=(1, 3, 4),
              seed: int = 0):
    torch.manual_seed(seed)
    model = MODELS.build(
        dict(
            type='BIM',
            backbone=dict(
                type='BIMViT',
                arch=copy.deepcopy(TINY_ARCH),
                img_size=16,
                patch_size=4,
                patch_cfg=dict(in_channels=1),
                block_boundaries=list(block_boundaries)),
            neck=copy.deepcopy(neck),
            head=copy.deepcopy(head)))
    model.init_weights()
    return model


def images(n: int = 4, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 16, 16, generator=g)


def test_throw_zero_equals_plain_bim():
    """With throw_ratio=0 every block loss is plain BIM's, bit for bit."""
    plain = build_bim(TINY_NECK, TINY_HEAD)
    partial = build_bim(prmim_neck(0.), PRMIM_HEAD, seed=5)
    # the PR-MIM decoder adds no parameters: same checkpoint layout
    partial.load_state_dict(plain.state_dict())
    x = images()
    torch.manual_seed(7)
    ref = plain.loss(x, None)
    torch.manual_seed(7)
    out = partial.loss(x, None)
    for k in range(3):
        key = f'loss_block{k + 1}'
        assert torch.equal(out[key], ref[key]), key
    # no thrown token: only the kept mean is logged, and it is the loss
    assert 'mse_thrown_block1' not in out
    torch.testing.assert_close(out['mse_kept_block2'],
                               ref['loss_block2'].detach())


def test_decoder_token_counts():
    """Each block's decoder sees [CLS] + visible + kept tokens only."""
    # per-block throw ratios: 0.5 throws 8 of the 12 masked tokens, 0.25
    # throws 4, 0 throws none
    throws = [0.5, 0.25, 0.]
    model = build_bim([prmim_neck(t) for t in throws], PRMIM_HEAD)
    seen = {}
    for k, neck in enumerate(model.neck):
        neck.decoder_blocks[0].register_forward_pre_hook(
            lambda m, args, k=k: seen.__setitem__(k, args[0].shape))
    out = model.loss(images(), None)
    assert seen == {
        0: (4, 1 + 4 + 4, 16),
        1: (4, 1 + 4 + 8, 16),
        2: (4, 1 + 4 + 12, 16),
    }
    assert 'mse_thrown_block1' in out and 'mse_thrown_block2' in out
    assert 'mse_thrown_block3' not in out
    # parse_losses sums every key with 'loss' in it: only the block losses
    assert [k for k in out
            if 'loss' in k] == ['loss_block1', 'loss_block2', 'loss_block3']


def test_block_loss_is_prmim_loss():
    """A block's loss is loss_kept + loss_thrown of its decoder and head."""
    model = build_bim(PRMIM_NECK, PRMIM_HEAD)
    x = images()
    torch.manual_seed(3)
    out = model.loss(x, None)
    torch.manual_seed(3)
    stem, _, ids_restore = model.backbone.forward_stem(x)
    _, latent = model.backbone.forward_block(stem, 0)
    pred, kept, thrown = model.neck[0](latent, ids_restore)
    assert int(kept.sum()) == 4 * 4 and int(thrown.sum()) == 4 * 8
    parts = model.head[0].loss(pred, x, kept, thrown)
    torch.testing.assert_close(out['loss_block1'],
                               parts['loss_kept'] + parts['loss_thrown'])
    torch.testing.assert_close(out['mse_thrown_block1'], parts['mse_thrown'])


@pytest.mark.parametrize('block', [0, 1, 2])
def test_gradient_isolation(block):
    """loss_block{k} reaches block k's encoder part and decoder only."""
    model = build_bim(PRMIM_NECK, PRMIM_HEAD)
    losses = model.loss(images(), None)
    losses[f'loss_block{block + 1}'].backward()
    owned = trained = 0
    for name, p in model.named_parameters():
        if not p.requires_grad:  # the fixed sin-cos position embedding
            assert p.grad is None
            continue
        if model.get_block_id(name) == block:
            owned += 1
            assert p.grad is not None, name
            trained += int(p.grad.abs().sum() > 0)
        else:
            assert p.grad is None or not p.grad.any(), name
    # the thrown path adds no parameter, and every owned one is trained
    assert owned > 0 and trained == owned


def test_train_step_steps_every_block():
    """One block-wise train_step updates every block and logs the parts."""
    model = build_bim(PRMIM_NECK, PRMIM_HEAD)
    optim = BIMOptimWrapperConstructor(
        dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05)))(
            model)
    steps = []
    for k in range(3):
        wrapper = optim.block(k)
        step = wrapper.step

        def spy(step=step, k=k, **kwargs):
            steps.append(k)
            return step(**kwargs)

        wrapper.step = spy
    before = [[p.detach().clone() for p in model.block_parameters(k)]
              for k in range(3)]
    log_vars = model.train_step(
        dict(inputs=images(), data_samples=None), optim)
    assert steps == [0, 1, 2]
    block_losses = [log_vars[f'loss_block{k + 1}'] for k in range(3)]
    torch.testing.assert_close(log_vars['loss'], sum(block_losses))
    for k in range(3):
        assert f'mse_kept_block{k + 1}' in log_vars
        assert f'mse_thrown_block{k + 1}' in log_vars
        changed = [
            not torch.equal(a, b)
            for a, b in zip(before[k], model.block_parameters(k))
        ]
        assert any(changed), k
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize('neck,head,error,match', [
    (prmim_neck(0.75), PRMIM_HEAD, ValueError,
     r'`throw_ratio`.*mask_ratio.*\(block 1\)'),
    ([PRMIM_NECK, prmim_neck(0.8), PRMIM_NECK
      ], PRMIM_HEAD, ValueError, r'`throw_ratio`.*\(block 2\)'),
    (prmim_neck(0.5, k=9), PRMIM_HEAD, ValueError, r'`k`'),
    (PRMIM_NECK, TINY_HEAD, TypeError, r'`head.type`'),
    (TINY_NECK, PRMIM_HEAD, TypeError, r'`neck.type`'),
    ([TINY_NECK, TINY_NECK, PRMIM_NECK
      ], TINY_HEAD, TypeError, r'`head.type`.*\(block 3\)'),
])
def test_bad_config_at_build(neck, head, error, match):
    with pytest.raises(error, match=match):
        build_bim(neck, head)


@pytest.mark.parametrize('name,num_patches,decoded', [
    ('bim-prmim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist', 64, 1 + 16 + 16),
    ('bim-prmim_vit-base-p16_8xb512-amp-coslr-400e_in1k', 196, 1 + 49 + 49),
])
def test_configs(name, num_patches, decoded):
    """The configs build K=4 blocks, each with a partial decoder."""
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs', 'prmim', f'{name}.py'))
    assert cfg.model.type == 'BIM'
    assert cfg.model.neck.type == 'PRMIMPretrainDecoder'
    assert cfg.model.neck.throw_ratio == 0.5
    assert cfg.model.neck.decoder_depth == 2
    assert cfg.model.head.type == 'PRMIMPretrainHead'
    assert cfg.model.backbone.block_boundaries == [3, 6, 9, 12]
    assert cfg.optim_wrapper.constructor == 'BIMOptimWrapperConstructor'
    if num_patches == 64:
        model = MODELS.build(cfg.model)
        assert len(model.neck) == 4
        visible = int(num_patches * (1 - model.backbone.mask_ratio))
        thrown = model.neck[0].num_thrown(num_patches)
        assert 1 + num_patches - thrown == decoded
        assert 1 + visible == 17


def test_reconstruction_panels():
    """BIM's per-block pictures work with partial decoders."""
    from mim_plugins.visualization.reconstruction import bim_panels
    model = build_bim(PRMIM_NECK, PRMIM_HEAD).eval()
    with torch.no_grad():
        panels = bim_panels(model, images())
    for k in range(3):
        assert panels[f'block{k + 1}'].shape == (4, 1, 16, 16)
        assert torch.isfinite(panels[f'block{k + 1}']).all()
