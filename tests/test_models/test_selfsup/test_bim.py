# Copyright (c) OpenMMLab. All rights reserved.
"""BIM algorithm: gradient isolation, block-wise train step, K=1 == MAE."""
import copy

import pytest
import torch
from helpers import TINY_ARCH, TINY_HEAD, TINY_NECK
from mmpretrain.registry import MODELS

import mim_plugins  # noqa: F401
from mim_plugins.benchmarks import SavedActivationMeter
from mim_plugins.engine.optim_wrappers import BIMOptimWrapperConstructor

ARCH = copy.deepcopy(TINY_ARCH)
NECK = copy.deepcopy(TINY_NECK)
HEAD = copy.deepcopy(TINY_HEAD)


def backbone_cfg(block_boundaries=[2, 4], type='BIMViT'):
    cfg = dict(
        type=type,
        arch=ARCH,
        img_size=16,
        patch_size=4,
        patch_cfg=dict(in_channels=1))
    if block_boundaries is not None:
        cfg['block_boundaries'] = block_boundaries
    return cfg


def build_bim(block_boundaries=[2, 4], neck=NECK, head=HEAD, seed=0):
    torch.manual_seed(seed)
    model = MODELS.build(
        dict(
            type='BIM',
            backbone=backbone_cfg(block_boundaries),
            neck=copy.deepcopy(neck),
            head=copy.deepcopy(head)))
    model.init_weights()
    return model


def build_optim(model, lr=1e-3, **kwargs):
    cfg = dict(optimizer=dict(type='AdamW', lr=lr, weight_decay=0.05))
    cfg.update(kwargs)
    return BIMOptimWrapperConstructor(cfg)(model)


def images(n=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 16, 16, generator=g)


def batch(x):
    return dict(inputs=x, data_samples=None)


@pytest.mark.parametrize('block', [0, 1, 2])
def test_gradient_isolation(block):
    """loss_k has a gradient only in block k's encoder part, decoder, head."""
    model = build_bim(block_boundaries=[1, 3, 4])
    losses = model.loss(images(), None)
    assert list(losses) == ['loss_block1', 'loss_block2', 'loss_block3']
    losses[f'loss_block{block + 1}'].backward()
    owned = trained = 0
    for name, p in model.named_parameters():
        if not p.requires_grad:
            assert p.grad is None
            continue
        if model.get_block_id(name) == block:
            owned += 1
            assert p.grad is not None, name
            trained += int(p.grad.abs().sum() > 0)
        else:
            assert p.grad is None or not p.grad.any(), name
    assert owned > 0 and trained == owned


def test_block_ownership():
    model = build_bim(block_boundaries=[1, 3, 4])
    gid = model.get_block_id
    assert gid('backbone.patch_embed.projection.weight') == 0
    assert gid('backbone.cls_token') == 0
    assert gid('backbone.layers.0.ln1.weight') == 0
    assert gid('backbone.layers.1.ffn.layers.1.weight') == 1
    assert gid('backbone.layers.2.attn.qkv.weight') == 1
    assert gid('backbone.block_norms.1.weight') == 1
    assert gid('backbone.layers.3.attn.qkv.weight') == 2
    assert gid('backbone.ln1.weight') == 2
    assert gid('neck.2.decoder_pred.weight') == 2
    # every parameter belongs to exactly one block
    per_block = [set(map(id, model.block_parameters(k))) for k in range(3)]
    assert sum(map(len, per_block)) == len(list(model.parameters()))


def test_train_step_order_and_one_step_per_block():
    """Block k steps once per iteration, right after its own backward, with
    only its own gradients alive."""
    model = build_bim()
    optim = build_optim(model)
    events = []
    block_params = [set(map(id, model.block_parameters(k))) for k in range(2)]

    def spy(k, wrapper):
        step = wrapper.step

        def wrapped(**kwargs):
            # gradients of the other blocks were freed (set to None)
            alive = {id(p) for p in model.parameters() if p.grad is not None}
            assert alive and alive <= block_params[k]
            events.append(k)
            return step(**kwargs)

        wrapper.step = wrapped

    for k in range(2):
        spy(k, optim.block(k))
    before = [[p.detach().clone() for p in model.block_parameters(k)]
              for k in range(2)]
    for _ in range(2):
        log_vars = model.train_step(batch(images()), optim)
    assert events == [0, 1, 0, 1]
    assert list(log_vars) == ['loss', 'loss_block1', 'loss_block2']
    assert torch.allclose(log_vars['loss'],
                          log_vars['loss_block1'] + log_vars['loss_block2'])
    assert all(p.grad is None for p in model.parameters())
    for k in range(2):
        changed = [
            not torch.equal(a, b)
            for a, b in zip(before[k], model.block_parameters(k))
        ]
        assert any(changed)


def test_train_step_matches_loss():
    """The block-wise step sees the same losses as the one-graph ``loss``."""
    model = build_bim()
    torch.manual_seed(3)
    ref = model.loss(images(), None)
    torch.manual_seed(3)
    log_vars = model.train_step(batch(images()), build_optim(model, lr=0.))
    for k in ('loss_block1', 'loss_block2'):
        torch.testing.assert_close(log_vars[k], ref[k].detach())


def test_one_block_equals_mae():
    """K=1 with MAE's decoder is MAE: same loss and gradients for the same
    weights and mask."""
    torch.manual_seed(0)
    mae = MODELS.build(
        dict(
            type='MAE',
            backbone=backbone_cfg(None, type='MAEViT'),
            neck=NECK,
            head=HEAD))
    mae.init_weights()
    bim = build_bim(block_boundaries=[4])
    state = {
        k.replace('neck.', 'neck.0.', 1).replace('head.', 'head.0.', 1): v
        for k, v in mae.state_dict().items()
    }
    bim.load_state_dict(state, strict=True)

    x = images()
    torch.manual_seed(7)
    mae_loss = mae.loss(x, None)['loss']
    torch.manual_seed(7)
    bim_loss = bim.loss(x, None)['loss_block1']
    torch.testing.assert_close(bim_loss, mae_loss, rtol=0, atol=0)
    mae_loss.backward()
    bim_loss.backward()
    mae_grads = dict(mae.named_parameters())
    for name, p in bim.named_parameters():
        ref = mae_grads[name.replace('neck.0.',
                                     'neck.').replace('head.0.', 'head.')]
        if p.requires_grad:
            torch.testing.assert_close(p.grad, ref.grad)

    # and the block-wise train step logs the same loss
    torch.manual_seed(7)
    log_vars = bim.train_step(batch(x), build_optim(bim))
    torch.testing.assert_close(log_vars['loss'], mae_loss.detach())


def test_init_matches_mae():
    """init_weights reaches every block's decoder: K=1 BIM is initialised
    exactly like MAE from the same seed, and every decoder of a K=3 model
    gets MAE's sin-cos position embedding."""
    init_cfg = [
        dict(type='Xavier', layer='Linear', distribution='uniform'),
        dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0)
    ]
    torch.manual_seed(0)
    mae = MODELS.build(
        dict(
            type='MAE',
            backbone=backbone_cfg(None, type='MAEViT'),
            neck=NECK,
            head=HEAD,
            init_cfg=init_cfg))
    mae.init_weights()
    ref = mae.state_dict()
    for bounds in ([4], [1, 3, 4]):
        torch.manual_seed(0)
        bim = MODELS.build(
            dict(
                type='BIM',
                backbone=backbone_cfg(bounds),
                neck=NECK,
                head=HEAD,
                init_cfg=init_cfg))
        bim.init_weights()
        for k, decoder in enumerate(bim.neck):
            torch.testing.assert_close(decoder.decoder_pos_embed,
                                       ref['neck.decoder_pos_embed'])
            assert decoder.mask_token.abs().sum() > 0
        if len(bounds) == 1:
            for name, value in bim.state_dict().items():
                torch.testing.assert_close(
                    value,
                    ref[name.replace('neck.0.',
                                     'neck.').replace('head.0.', 'head.')],
                    rtol=0,
                    atol=0)


def test_full_forward_and_extract_feat():
    model = build_bim(block_boundaries=[1, 3, 4])
    x = images()
    latent, mask, ids_restore = model.backbone(x)
    assert latent.shape == (2, 1 + 4, 32) and mask.shape == (2, 16)
    feats = model.extract_feat(x)[0]
    assert feats.shape == (2, 17, 32)
    # the un-masked full-depth prefix is the plain ViT forward
    torch.testing.assert_close(model.backbone.forward_prefix(x, 3), feats)
    with pytest.raises(ValueError, match='num_blocks'):
        model.backbone.forward_prefix(x, 4)


def test_per_block_decoders():
    necks = [dict(NECK, decoder_depth=d) for d in (1, 2)]
    model = build_bim(neck=necks)
    assert [len(n.decoder_blocks) for n in model.neck] == [1, 2]
    assert len(model.head) == 2


@pytest.mark.parametrize('bounds, match', [
    ([], 'non-empty'),
    ([2, 2, 4], 'strictly increasing'),
    ([3, 1, 4], 'strictly increasing'),
    ([0, 4], 'strictly increasing'),
    ([2, 3], 'end at the encoder depth 4'),
    ([2, 5], 'end at the encoder depth 4'),
    ([2.0, 4], 'list of ints'),
    (4, 'list of ints'),
])
def test_bad_block_boundaries(bounds, match):
    with pytest.raises(ValueError, match='block_boundaries') as err:
        build_bim(block_boundaries=bounds)
    assert match in str(err.value)


def test_bad_decoder_list_and_backbone():
    with pytest.raises(ValueError, match=r'len\(neck\).*== 2, got 3'):
        build_bim(neck=[NECK] * 3)
    with pytest.raises(ValueError, match=r'len\(head\).*== 2, got 1'):
        build_bim(head=[HEAD])
    with pytest.raises(TypeError, match='BIMViT'):
        MODELS.build(
            dict(
                type='BIM',
                backbone=backbone_cfg(None, type='MAEViT'),
                neck=NECK,
                head=HEAD))
    with pytest.raises(TypeError, match='BIMOptimWrapperConstructor'):
        from mmengine.optim import OptimWrapper
        model = build_bim()
        model.train_step(
            batch(images()),
            OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1)))


@pytest.mark.parametrize('name, bounds', [
    ('bim_vit-base-p16_8xb512-amp-coslr-400e_in1k.py', [3, 6, 9, 12]),
    ('bim_vit-large-p16_8xb512-amp-coslr-400e_in1k.py', [6, 12, 18, 24]),
    ('bim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py', [3, 6, 9, 12]),
])
def test_configs_build_model_and_optim_wrapper(name, bounds):
    from helpers import REPO_ROOT
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    cfg = Config.fromfile(f'{REPO_ROOT}/configs/bim/{name}')
    assert cfg.model.backbone.block_boundaries == bounds
    wrapper = cfg.model_wrapper_cfg.type
    assert wrapper == 'mmpretrain.BIMDistributedDataParallel'
    if 'large' in name:
        return  # parsing is enough; building ViT-L is slow on CPU
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    if optim_cfg.get('type') == 'AmpOptimWrapper' and \
            not torch.cuda.is_available():
        # what tools/train.py selects for an AMP config without CUDA
        optim_cfg.type = 'CPUAmpOptimWrapper'
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
        optim = build_optim_wrapper(model, optim_cfg)
    assert len(model.neck) == len(bounds) == len(list(optim.keys()))
    assert all(len(n.decoder_blocks) == 2 for n in model.neck)
    for k, wrapper in enumerate(optim.values()):
        groups = wrapper.optimizer.param_groups
        assert sum(len(g['params']) for g in groups) == len(
            [p for p in model.block_parameters(k) if p.requires_grad])


def peak_saved_bytes(model, optim):
    meter = SavedActivationMeter(model)
    torch.manual_seed(0)
    with meter.hooks():
        model.train_step(batch(images(4)), optim)
    assert meter.current == 0  # every graph was freed
    return meter.peak


def test_peak_activation_memory_is_one_block():
    """Only one block's graph is alive at a time: the peak of saved
    activations falls with K, and K=1 matches MAE's."""
    from mmengine.optim import OptimWrapper
    torch.manual_seed(0)
    mae = MODELS.build(
        dict(
            type='MAE',
            backbone=backbone_cfg(None, type='MAEViT'),
            neck=NECK,
            head=HEAD))
    mae_peak = peak_saved_bytes(
        mae, OptimWrapper(torch.optim.SGD(mae.parameters(), lr=0.)))
    peaks = {}
    for bounds in ([4], [2, 4], [1, 2, 3, 4]):
        model = build_bim(block_boundaries=bounds)
        peaks[len(bounds)] = peak_saved_bytes(model, build_optim(model, lr=0.))
    print(f'peak saved activations: MAE {mae_peak}, BIM {peaks}')
    assert peaks[1] == mae_peak
    assert peaks[1] > peaks[2] > peaks[4]
