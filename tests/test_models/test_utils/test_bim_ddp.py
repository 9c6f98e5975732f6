# Copyright (c) OpenMMLab. All rights reserved.
"""BIM data parallel: 2 gloo processes with batch b equal one process with
batch 2b (parameters after 3 steps within 1e-5)."""
import copy

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from helpers import TINY_ARCH, TINY_HEAD, TINY_NECK
from mmpretrain.registry import MODELS

import mim_plugins  # noqa: F401
from mim_plugins.engine.optim_wrappers import BIMOptimWrapperConstructor
from mim_plugins.models.backbones import BIMViT
from mim_plugins.models.wrappers import BIMDistributedDataParallel

ARCH = copy.deepcopy(TINY_ARCH)
NECK = copy.deepcopy(TINY_NECK)
HEAD = copy.deepcopy(TINY_HEAD)
STEPS = 3


class ContentMaskedBIMViT(BIMViT):
    """Masks from each sample's own tokens, so a sample gets the same mask
    whichever process and batch position it lands in."""

    def random_masking(self, x, mask_ratio=0.75):
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


def build():
    torch.manual_seed(0)
    backbone = ContentMaskedBIMViT(
        block_boundaries=[1, 3, 4],
        arch=ARCH,
        img_size=16,
        patch_size=4,
        patch_cfg=dict(in_channels=1))
    model = MODELS.build(
        dict(type='BIM', backbone=backbone, neck=NECK, head=HEAD))
    model.init_weights()
    # SGD keeps the comparison linear in the gradients: Adam would blow up
    # float32 round-off in gradients that are exactly zero in theory (the
    # attention key biases) to lr-sized differences.
    optim = BIMOptimWrapperConstructor(
        dict(
            optimizer=dict(
                type='SGD', lr=0.1, momentum=0.9, weight_decay=0.05),
            clip_grad=dict(max_norm=1.0)))(
                model)
    return model, optim


def batches(world_size=1, rank=0, per_rank=2):
    g = torch.Generator().manual_seed(5)
    out = []
    for _ in range(STEPS):
        x = torch.randn(2 * per_rank, 1, 16, 16, generator=g)
        size = x.shape[0] // world_size
        out.append(
            dict(inputs=x[rank * size:(rank + 1) * size], data_samples=None))
    return out


def _worker(rank, world_size, port, out_path):
    torch.set_num_threads(1)
    dist.init_process_group(
        'gloo',
        init_method=f'tcp://127.0.0.1:{port}',
        rank=rank,
        world_size=world_size)
    try:
        model, optim = build()
        wrapped = BIMDistributedDataParallel(model)
        assert len(wrapped.block_ddps) == 3
        for data in batches(world_size, rank):
            wrapped.train_step(data, optim)
        if rank == 0:
            torch.save(copy.deepcopy(model.state_dict()), out_path)
    finally:
        dist.destroy_process_group()


def test_ddp_matches_single_process(tmp_path):
    from helpers import free_port
    out_path = str(tmp_path / 'ddp.pth')
    mp.start_processes(
        _worker,
        args=(2, free_port(), out_path),
        nprocs=2,
        join=True,
        start_method='fork')
    ddp_state = torch.load(out_path, weights_only=True)

    model, optim = build()
    init = copy.deepcopy(model.state_dict())
    for data in batches():
        model.train_step(data, optim)
    moved = 0
    for name, value in model.state_dict().items():
        torch.testing.assert_close(
            ddp_state[name], value, rtol=0, atol=1e-5, msg=name)
        moved += int(not torch.equal(init[name], value))
    assert moved > 0


def test_wrapper_rejects_other_models():
    with pytest.raises(TypeError, match='BIM'):
        BIMDistributedDataParallel(torch.nn.Linear(2, 2))
