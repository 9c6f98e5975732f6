# Copyright (c) OpenMMLab. All rights reserved.
"""BIM optimizer wrapper: per-block optimizers, clipping, accumulation,
AMP, state dicts, resume, and the runner's schedulers and logger."""
import copy

import pytest
import torch
from helpers import TINY_ARCH, TINY_HEAD, TINY_NECK, tiny_backbone
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper
from mmpretrain.registry import MODELS, OPTIM_WRAPPERS

import mim_plugins  # noqa: F401
from mim_plugins.engine.optim_wrappers import (BIMOptimWrapper,
                                               BIMOptimWrapperConstructor)

ARCH = copy.deepcopy(TINY_ARCH)
MODEL = dict(
    type='BIM',
    backbone=tiny_backbone('BIMViT', block_boundaries=[1, 3, 4]),
    neck=copy.deepcopy(TINY_NECK),
    head=copy.deepcopy(TINY_HEAD))
MAE_KEYS = dict(
    custom_keys={
        'ln': dict(decay_mult=0.0),
        'block_norms': dict(decay_mult=0.0),
        'bias': dict(decay_mult=0.0),
        'pos_embed': dict(decay_mult=0.),
        'mask_token': dict(decay_mult=0.),
        'cls_token': dict(decay_mult=0.)
    })


def build_bim(seed=0):
    torch.manual_seed(seed)
    model = MODELS.build(copy.deepcopy(MODEL))
    model.init_weights()
    return model


def build_optim(model, paramwise_cfg=None, **kwargs):
    cfg = dict(
        optimizer=dict(
            type='AdamW', lr=1e-3, betas=(0.9, 0.95), weight_decay=0.05))
    cfg.update(kwargs)
    return BIMOptimWrapperConstructor(cfg, paramwise_cfg)(model)


def batch(seed=1, n=2):
    g = torch.Generator().manual_seed(seed)
    return dict(
        inputs=torch.randn(n, 1, 16, 16, generator=g), data_samples=None)


def test_one_optimizer_per_block_with_paramwise_cfg():
    model = build_bim()
    optim = build_optim(model, MAE_KEYS)
    assert isinstance(optim, BIMOptimWrapper)
    assert list(optim.keys()) == ['block1', 'block2', 'block3']
    # frozen sin-cos position embeddings need no optimizer
    names = {id(p): n for n, p in model.named_parameters() if p.requires_grad}
    seen = set()
    for k in range(3):
        groups = optim.block(k).optimizer.param_groups
        ids = {id(p) for g in groups for p in g['params']}
        assert ids == {
            id(p)
            for p in model.block_parameters(k) if p.requires_grad
        }
        assert not ids & seen
        seen |= ids
        for g in groups:
            name = names[id(g['params'][0])]
            no_decay = any(key in name for key in MAE_KEYS['custom_keys'])
            assert g['weight_decay'] == (0. if no_decay else 0.05), name
    assert seen == set(names)
    # without paramwise_cfg: one group per block
    optim = build_optim(model)
    assert [len(w.param_groups) for w in optim.values()] == [1, 1, 1]


def test_per_block_gradient_clipping():
    """Clipping uses each block's own norm, logged per block."""
    model = build_bim()
    optim = build_optim(model, clip_grad=dict(max_norm=1.0))
    optim.block(0).optimizer.param_groups[0]['lr'] = 0.
    for k in range(3):
        for p in model.block_parameters(k):
            if p.requires_grad:
                p.grad = torch.full_like(p, 10. if k == 0 else 1e-4)
    small = [
        p.grad.clone() for p in model.block_parameters(1) if p.requires_grad
    ]
    for k in range(3):
        optim.block(k).step()
    hub = MessageHub.get_current_instance()
    norm1 = hub.get_scalar('train/grad_norm_block1').current()
    norm2 = hub.get_scalar('train/grad_norm_block2').current()
    assert norm1 > 1. and norm2 < 1.
    grads1 = [p.grad for p in model.block_parameters(0) if p.grad is not None]
    assert torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads1
                                               ])).item() == pytest.approx(
                                                   1.0, rel=1e-4)
    # block 2 is below its own threshold: untouched (a global clip would
    # have scaled it down by ~norm1)
    trainable = [p for p in model.block_parameters(1) if p.requires_grad]
    for g, p in zip(small, trainable):
        assert torch.equal(g, p.grad)


def test_gradient_accumulation():
    model = build_bim()
    optim = build_optim(model, accumulative_counts=2)
    optim.initialize_count_status(model, 0, 4)
    steps = [0, 0, 0]
    for k, wrapper in enumerate(optim.values()):
        orig = wrapper.optimizer.step

        def counted(*args, _k=k, _orig=orig, **kwargs):
            steps[_k] += 1
            return _orig(*args, **kwargs)

        wrapper.optimizer.step = counted
    model.train_step(batch(1), optim)
    assert steps == [0, 0, 0]
    # gradients of the first micro-batch are kept for every block
    assert all(
        p.grad is not None for p in model.block_parameters(2)
        if p.requires_grad)
    model.train_step(batch(2), optim)
    assert steps == [1, 1, 1]
    assert all(p.grad is None for p in model.parameters())
    assert [w.inner_count for w in optim.values()] == [2, 2, 2]


def test_amp_per_block_on_cpu():
    # what ``tools/train.py --amp`` selects without CUDA
    model = build_bim()
    optim = build_optim(model, type='CPUAmpOptimWrapper', loss_scale='dynamic')
    wrappers = list(optim.values())
    assert all(type(w).__name__ == 'CPUAmpOptimWrapper' for w in wrappers)
    assert len({id(w) for w in wrappers}) == 3
    log_vars = model.train_step(batch(), optim)
    assert torch.isfinite(log_vars['loss'])


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason='needs CUDA (GradScaler per block)')
def test_amp_per_block_on_cuda():
    """On CUDA every block has its own mmengine AmpOptimWrapper and loss
    scaler; resume restores every block's scaler."""
    model = build_bim().cuda()
    optim = build_optim(model, type='AmpOptimWrapper', loss_scale='dynamic')
    wrappers = list(optim.values())
    assert all(type(w).__name__ == 'AmpOptimWrapper' for w in wrappers)
    assert len({id(w.loss_scaler) for w in wrappers}) == 3
    data = batch()
    data['inputs'] = data['inputs'].cuda()
    for _ in range(2):
        log_vars = model.train_step(data, optim)
    assert torch.isfinite(log_vars['loss'])
    state = optim.state_dict()
    for k in range(3):
        assert 'loss_scaler' in state[f'block{k + 1}']
    # a different scale in each block, restored block by block
    for k, w in enumerate(wrappers):
        w.loss_scaler.update(new_scale=2.0**(k + 3))
    state = copy.deepcopy(optim.state_dict())
    resumed = build_optim(model, type='AmpOptimWrapper', loss_scale='dynamic')
    resumed.load_state_dict(state)
    assert [w.loss_scaler.get_scale()
            for w in resumed.values()] == [8.0, 16.0, 32.0]


def test_lr_logging_and_type():
    model = build_bim()
    optim = build_optim(model, MAE_KEYS)
    assert set(optim.get_lr()) == {'lr', 'base_lr'}
    assert set(optim.get_momentum()) == {'momentum'}
    for g in optim.block(2).param_groups:
        g['lr'] = 0.5
    lrs = optim.get_lr()
    assert {'block1.lr', 'block2.lr', 'block3.lr'} <= set(lrs)
    assert 'lr' not in lrs
    assert lrs['block3.lr'][0] == 0.5
    # a BIMOptimWrapper `type` means plain per-block OptimWrappers
    optim = build_optim(model, type='BIMOptimWrapper')
    assert all(type(w) is OptimWrapper for w in optim.values())
    assert OPTIM_WRAPPERS.get('BIMOptimWrapper') is BIMOptimWrapper
    with pytest.raises(ValueError, match='block1'):
        BIMOptimWrapper(first=optim.block(0))
    with pytest.raises(TypeError, match="`model.type`='BIM'"):
        BIMOptimWrapperConstructor(dict(optimizer=dict(type='SGD', lr=1.)))(
            torch.nn.Linear(2, 2))


def test_resume_restores_every_block():
    """state_dict round trip: the resumed run's next loss and parameters
    equal the uninterrupted run's."""
    model = build_bim()
    optim = build_optim(model, MAE_KEYS, clip_grad=dict(max_norm=5.0))
    for i in range(2):
        model.train_step(batch(i), optim)
    model_state = copy.deepcopy(model.state_dict())
    optim_state = copy.deepcopy(optim.state_dict())
    assert list(optim_state) == ['block1', 'block2', 'block3']
    torch.manual_seed(11)
    ref = model.train_step(batch(5), optim)
    ref_params = [p.detach().clone() for p in model.parameters()]

    resumed = build_bim(seed=123)  # different init, overwritten below
    resumed.load_state_dict(model_state)
    resumed_optim = build_optim(
        resumed, MAE_KEYS, clip_grad=dict(max_norm=5.0))
    resumed_optim.load_state_dict(optim_state)
    for k in range(3):
        states = resumed_optim.block(k).optimizer.state
        assert len(states) > 0 and all(
            int(s['step']) == 2 for s in states.values())
    torch.manual_seed(11)
    out = resumed.train_step(batch(5), resumed_optim)
    for key in ref:
        torch.testing.assert_close(out[key], ref[key], rtol=0, atol=0)
    for a, b in zip(ref_params, resumed.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)

    with pytest.raises(ValueError, match='block_boundaries changed'):
        resumed_optim.load_state_dict({
            k: v
            for k, v in optim_state.items() if k != 'block3'
        })


def test_runner_schedules_every_block(tmp_path, fmnist_root):
    """Runner integration: one scheduler list per block, the same lr in every
    block, per-block losses logged, checkpoint holds every block."""
    from helpers import REPO_ROOT
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = Config.fromfile(f'{REPO_ROOT}/configs/bim/'
                          'bim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py')
    cfg.model.backbone.update(
        arch=dict(
            embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64),
        block_boundaries=[2, 4])
    cfg.model.neck.update(embed_dim=32, decoder_embed_dim=16)
    cfg.train_dataloader.update(
        batch_size=8, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.update(data_prefix=fmnist_root, indices=32)
    cfg.train_cfg.max_epochs = 2
    cfg.param_scheduler = [
        dict(
            type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=4),
        dict(
            type='CosineAnnealingLR', T_max=4, by_epoch=False, begin=4, end=8)
    ]
    cfg.default_hooks.logger.interval = 1
    cfg.work_dir = str(tmp_path)
    cfg.launcher = 'none'
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert isinstance(runner.optim_wrapper, BIMOptimWrapper)
    assert sorted(runner.param_schedulers) == ['block1', 'block2']
    lrs = [w.param_groups[0]['lr'] for w in runner.optim_wrapper.values()]
    expected = runner.param_schedulers['block1'][-1].get_last_value()[0]
    assert lrs == [pytest.approx(expected)] * 2
    assert expected < 1.5e-3 * 0.5
    scalars = runner.message_hub.log_scalars
    assert {
        'train/lr', 'train/loss', 'train/loss_block1', 'train/loss_block2'
    } <= set(scalars)
    ckpt = torch.load(
        f'{tmp_path}/epoch_2.pth', map_location='cpu', weights_only=False)
    assert sorted(ckpt['optimizer']) == ['block1', 'block2']
    assert sorted(ckpt['param_schedulers']) == ['block1', 'block2']
