# Copyright (c) OpenMMLab. All rights reserved.
"""Data parallel equivalence of every algorithm.

Two gloo processes with a per-process batch of ``b`` under mmengine's
``MMDistributedDataParallel`` must end, after 3 steps, with the parameters
of one process trained on the batch of ``2b`` (within 1e-5).

Masks are drawn so both runs see the same ones: per-sample masks (MAE,
PR-MIM, LocalMIM ViT) are keyed on the sample's own tokens, so a sample
gets the same mask whichever process and batch position it lands in;
batch-shared masks (MixMIM, LocalMIM Swin) come from the same seed on every
rank. MixMIM pairs image ``i`` with image ``B-1-i`` of the *per-device*
batch: the main test splits its global batch so that the per-device pairs
are the global ones (:func:`pairing_split`); a second test shows that a
split with other pairs gives the same result, as the loss is a mean of
per-image terms. Controls with masks that differ between the runs show that
the comparison is sensitive to them.
"""
import copy
import random
from typing import Callable, List, NamedTuple, Optional, Tuple

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from helpers import TINY_ARCH, TINY_HEAD, TINY_NECK, free_port
from mmengine.model import MMDistributedDataParallel
from mmengine.optim import OptimWrapper, build_optim_wrapper
from mmengine.registry import DefaultScope
from mmpretrain.models import MAEViT
from mmpretrain.registry import MODELS
from torch import nn

import mim_plugins  # noqa: F401
from mim_plugins.models.backbones import LocalMIMViT

STEPS = 3
WORLD_SIZE = 2
ATOL = 1e-5


class ContentMaskingMixin:
    """MAE masking with noise from each sample's own tokens.

    Same outputs as :meth:`MAEViT.random_masking`, but the shuffle is a
    function of the sample's content, not of the random state or of the
    sample's position in the batch.
    """

    def random_masking(
        self,
        x: torch.Tensor,
        mask_ratio: float = 0.75
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        N, L, D = x.shape
        len_keep = int(L * (1 - mask_ratio))
        noise = torch.sin(x.detach().sum(-1) * 100.)
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :len_keep]
        x_masked = torch.gather(x, 1, ids_keep.unsqueeze(-1).repeat(1, 1, D))
        mask = torch.ones([N, L], device=x.device)
        mask[:, :len_keep] = 0
        return x_masked, torch.gather(mask, 1, ids_restore), ids_restore


class ContentMaskedMAEViT(ContentMaskingMixin, MAEViT):
    """:class:`MAEViT` with content-keyed masks."""


class ContentMaskedLocalMIMViT(ContentMaskingMixin, LocalMIMViT):
    """:class:`LocalMIMViT` with content-keyed masks."""


def tiny_vit(cls: type, **kwargs) -> nn.Module:
    """A 16-px, 1-channel, 4-layer, 32-wide masked ViT encoder."""
    return cls(
        arch=copy.deepcopy(TINY_ARCH),
        img_size=16,
        patch_size=4,
        patch_cfg=dict(in_channels=1),
        **kwargs)


def mae_cfg() -> dict:
    return dict(
        type='MAE',
        backbone=tiny_vit(ContentMaskedMAEViT),
        neck=copy.deepcopy(TINY_NECK),
        head=copy.deepcopy(TINY_HEAD))


def mae_random_masks_cfg() -> dict:
    """MAE with :class:`MAEViT`'s own (position-keyed) random masks."""
    cfg = mae_cfg()
    cfg['backbone'] = tiny_vit(MAEViT)
    return cfg


def prmim_cfg() -> dict:
    # 16 patches: 4 visible, 4 kept masked (furthest sampling), 8 thrown
    neck = copy.deepcopy(TINY_NECK)
    neck.update(
        type='PRMIMPretrainDecoder',
        throw_ratio=0.5,
        sampling='furthest',
        thrown_path='progressive',
        num_waves=2,
        k=4)
    head = copy.deepcopy(TINY_HEAD)
    head['type'] = 'PRMIMPretrainHead'
    return dict(
        type='PRMIM',
        backbone=tiny_vit(ContentMaskedMAEViT),
        neck=neck,
        head=head)


def localmim_vit_cfg() -> dict:
    # scales 4/2/1/0.5 of the 4x4 patch grid; the 0.5 scale has soft masks
    return dict(
        type='LocalMIM',
        backbone=tiny_vit(ContentMaskedLocalMIMViT, out_indices=[0, 1, 2, 3]),
        neck=dict(
            type='LocalMIMNeck',
            num_patches=16,
            embed_dim=32,
            out_channels=[9, 9, 9, 9],
            decoder_embed_dim=16,
            decoder_num_heads=2),
        head=dict(type='LocalMIMHead', patch_size=4, in_channels=1))


def localmim_swin_cfg() -> dict:
    # 32 px, patch 4, two stages: taps after merging are 4x4 (32 ch) and
    # 4x4 (32 ch, last stage); 8-px mask cells make a 4x4 mask grid
    return dict(
        type='LocalMIM',
        backbone=dict(
            type='LocalMIMSwin',
            arch=dict(embed_dims=16, depths=[1, 1], num_heads=[1, 2]),
            img_size=32,
            in_channels=1,
            window_size=4,
            mask_patch_size=8,
            out_indices=(0, 1),
            drop_path_rate=0.),
        neck=dict(
            type='LocalMIMSwinNeck',
            in_channels=[32, 32],
            grids=[4, 4],
            out_channels=[9, 9],
            decoder_embed_dim=16,
            decoder_num_heads=2),
        head=dict(
            type='LocalMIMHead', patch_size=8, scales=[1, 1], in_channels=1))


def mixmim_hier_cfg() -> dict:
    # mmpretrain's hierarchical encoder: 64 px, stride 32 -> 2x2 cells
    return dict(
        type='MixMIMPlus',
        backbone=dict(
            type='MixMIMPretrainTransformer',
            arch=dict(
                embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 4]),
            img_size=64,
            in_channels=1,
            window_size=[4, 4, 4, 2],
            mask_ratio=0.5),
        neck=dict(
            type='MixMIMPlusPretrainDecoder',
            num_patches=4,
            in_chans=1,
            encoder_stride=32,
            embed_dim=128,
            decoder_embed_dim=32,
            decoder_depth=1,
            decoder_num_heads=2),
        head=dict(
            type='MixMIMPlusPretrainHead',
            norm_pix=True,
            loss=dict(type='PixelReconstructionLoss', criterion='L2')))


def mixmim_vit_cfg() -> dict:
    # plain ViT: 32 px, patch 4, 8-px cells -> 4x4 cells
    return dict(
        type='MixMIMPlus',
        backbone=dict(
            type='MixMIMViT',
            arch=copy.deepcopy(TINY_ARCH),
            img_size=32,
            patch_size=4,
            patch_cfg=dict(in_channels=1),
            cell_size=8),
        neck=dict(
            type='MixMIMPlusPretrainDecoder',
            num_patches=64,
            in_chans=1,
            encoder_stride=4,
            embed_dim=32,
            decoder_embed_dim=32,
            decoder_depth=1,
            decoder_num_heads=2),
        head=dict(
            type='MixMIMPlusPretrainHead',
            norm_pix=True,
            loss=dict(type='PixelReconstructionLoss', criterion='L2')))


def contiguous_split(batch: torch.Tensor, rank: int,
                     world_size: int) -> torch.Tensor:
    """Rank ``r`` gets the ``r``-th contiguous slice (a sampler's split)."""
    size = batch.shape[0] // world_size
    return batch[rank * size:(rank + 1) * size]


def pairing_split(batch: torch.Tensor, rank: int,
                  world_size: int) -> torch.Tensor:
    """Split a batch of ``2b`` for batch-flip pairing on 2 devices.

    Rank 0 gets the first and the last ``b/2`` samples, rank 1 the middle
    ``b``. Per-device flip then pairs global sample ``i`` with ``2b-1-i``,
    exactly as the flip of the whole batch does.
    """
    assert world_size == 2
    b = batch.shape[0] // 2
    if rank == 0:
        return torch.cat([batch[:b // 2], batch[-(b // 2):]])
    return batch[b // 2:b // 2 + b]


class Case(NamedTuple):
    """A model, its images and how a global batch is shared out."""
    cfg: Callable[[], dict]
    shape: Tuple[int, int, int]  # (C, H, W)
    per_rank: int  # b; the single process trains on 2b
    split: Callable


CASES = dict(
    mae=Case(mae_cfg, (1, 16, 16), 2, contiguous_split),
    prmim=Case(prmim_cfg, (1, 16, 16), 2, contiguous_split),
    localmim_vit=Case(localmim_vit_cfg, (1, 16, 16), 2, contiguous_split),
    localmim_swin=Case(localmim_swin_cfg, (1, 32, 32), 2, contiguous_split),
    mixmim_hier=Case(mixmim_hier_cfg, (1, 64, 64), 4, pairing_split),
    mixmim_vit=Case(mixmim_vit_cfg, (1, 32, 32), 4, pairing_split),
    # control only: the two runs draw different masks
    mae_random_masks=Case(mae_random_masks_cfg, (1, 16, 16), 2,
                          contiguous_split),
)
EQUIVALENT = [name for name in CASES if name != 'mae_random_masks']


def build(name: str) -> nn.Module:
    """The same initial model in every process."""
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(CASES[name].cfg())
    model.init_weights()
    return model


def build_optim(model: nn.Module) -> OptimWrapper:
    # SGD keeps the comparison linear in the gradients: Adam would blow up
    # float32 round-off in gradients that are exactly zero in theory to
    # lr-sized differences.
    return build_optim_wrapper(
        model,
        dict(
            type='OptimWrapper',
            optimizer=dict(
                type='SGD', lr=0.1, momentum=0.9, weight_decay=0.05),
            clip_grad=dict(max_norm=1.0)))


def batches(name: str,
            rank: int = 0,
            world_size: int = 1,
            split: Optional[Callable] = None) -> List[dict]:
    """The global batches of every step, or this rank's share of them."""
    case = CASES[name]
    split = split or case.split
    g = torch.Generator().manual_seed(5)
    out = []
    for _ in range(STEPS):
        x = torch.randn(WORLD_SIZE * case.per_rank, *case.shape, generator=g)
        if world_size > 1:
            x = split(x, rank, world_size)
        out.append(dict(inputs=x, data_samples=None))
    return out


def seed_step(step: int, rank_offset: int = 0) -> None:
    """Same random state on every rank and in the reference run (unless
    ``rank_offset`` differs), so batch-shared masks agree everywhere."""
    torch.manual_seed(100 + step + 1000 * rank_offset)
    random.seed(100 + step + 1000 * rank_offset)


def _worker(rank: int, world_size: int, port: int, name: str, out_path: str,
            split: Callable, rank_seeds: bool) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        'gloo',
        init_method=f'tcp://127.0.0.1:{port}',
        rank=rank,
        world_size=world_size)
    try:
        model = build(name)
        # the wrapper and arguments the runner uses by default
        wrapped = MMDistributedDataParallel(
            module=model,
            broadcast_buffers=False,
            find_unused_parameters=False)
        optim = build_optim(wrapped)
        for step, data in enumerate(batches(name, rank, world_size, split)):
            seed_step(step, rank if rank_seeds else 0)
            wrapped.train_step(data, optim)
        if rank == 0:
            torch.save(copy.deepcopy(model.state_dict()), out_path)
    finally:
        dist.destroy_process_group()


def run_ddp(name: str,
            out_path: str,
            split: Optional[Callable] = None,
            rank_seeds: bool = False) -> dict:
    """Train ``name`` on 2 gloo processes; rank 0's final state dict.

    Args:
        name (str): Key of :data:`CASES`.
        out_path (str): Where rank 0 saves its state dict.
        split (Callable, optional): How a global batch is shared out;
            defaults to the case's own.
        rank_seeds (bool): Give every rank its own random state.
    """
    mp.start_processes(
        _worker,
        args=(WORLD_SIZE, free_port(), name, out_path, split, rank_seeds),
        nprocs=WORLD_SIZE,
        join=True,
        start_method='fork')
    return torch.load(out_path, weights_only=True)


def run_single(name: str) -> Tuple[dict, dict]:
    """Initial and final state dicts of one process on the global batch."""
    model = build(name)
    optim = build_optim(model)
    init = copy.deepcopy(model.state_dict())
    for step, data in enumerate(batches(name)):
        seed_step(step)
        model.train_step(data, optim)
    return init, model.state_dict()


def max_abs_diff(a: dict, b: dict) -> float:
    return max((a[k].float() - b[k].float()).abs().max().item() for k in b)


@pytest.mark.parametrize('name', EQUIVALENT)
def test_ddp_matches_single_process(name, tmp_path):
    ddp_state = run_ddp(name, str(tmp_path / 'ddp.pth'))
    init, single_state = run_single(name)
    assert set(ddp_state) == set(single_state)
    moved = []
    for key, value in single_state.items():
        torch.testing.assert_close(
            ddp_state[key], value, rtol=0, atol=ATOL, msg=key)
        if value.is_floating_point() and not torch.equal(init[key], value):
            moved.append(key)
    # the comparison is not vacuous: training changed the weights, beyond
    # the tolerance, in the encoder as well as elsewhere
    assert max_abs_diff(init, single_state) > 100 * ATOL
    assert any(k.startswith('backbone.') for k in moved), moved
    assert any(not k.startswith('backbone.') for k in moved), moved


@pytest.mark.parametrize('name', ['mixmim_hier', 'mixmim_vit'])
def test_mixmim_loss_does_not_depend_on_pairing(name, tmp_path):
    """A contiguous split pairs other images than the global flip (rank 0
    pairs 0-3 and 1-2 instead of 0-7 and 1-6), yet the result is the same:
    same-source attention in the encoder and one source per decoder branch
    make the loss a mean of per-image terms."""
    ddp_state = run_ddp(name, str(tmp_path / 'ddp.pth'), contiguous_split)
    _, single_state = run_single(name)
    for key, value in single_state.items():
        torch.testing.assert_close(
            ddp_state[key], value, rtol=0, atol=ATOL, msg=key)


@pytest.mark.parametrize('name, rank_seeds', [('mae_random_masks', False),
                                              ('mixmim_vit', True)])
def test_different_masks_break_equivalence(name, rank_seeds, tmp_path):
    """Controls: the comparison sees masks. MAE's own per-sample masking
    draws rank 1's masks from the rows rank 0 also draws; rank-dependent
    seeds give MixMIM a different batch mask per rank."""
    ddp_state = run_ddp(name, str(tmp_path / 'ddp.pth'), rank_seeds=rank_seeds)
    _, single_state = run_single(name)
    assert max_abs_diff(ddp_state, single_state) > 10 * ATOL
