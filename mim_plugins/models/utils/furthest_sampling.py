# Copyright (c) OpenMMLab. All rights reserved.
"""Token sampling on the patch grid for partial reconstruction.

Used by PR-MIM, implementation of `PR-MIM: Delving Deeper into Partial
Reconstruction in Masked Image Modeling
<https://arxiv.org/abs/2411.15746>`_, to choose which masked tokens enter the
decoder.
"""
from typing import Optional, Tuple

import torch


def grid_sq_distances(grid_size: Tuple[int, int],
                      device: Optional[torch.device] = None) -> torch.Tensor:
    """Squared Euclidean distances between all cells of a patch grid.

    Patches are numbered row-major, as in ``PatchEmbed`` and MAE's masking.

    Args:
        grid_size (tuple[int, int]): ``(rows, cols)`` of the patch grid.
        device (torch.device, optional): Device of the result.

    Returns:
        torch.Tensor: ``(L, L)`` float tensor, ``L = rows * cols``. Values are
        small integers stored exactly in float32.
    """
    rows, cols = grid_size
    ys, xs = torch.meshgrid(
        torch.arange(rows, device=device),
        torch.arange(cols, device=device),
        indexing='ij')
    coords = torch.stack([ys.flatten(), xs.flatten()], dim=-1)
    diff = coords[:, None, :] - coords[None, :, :]
    return (diff * diff).sum(-1).float()


def min_sq_distance_to_set(in_set: torch.Tensor,
                           sq_dist: torch.Tensor) -> torch.Tensor:
    """Squared distance from every cell to the nearest cell of a set.

    Args:
        in_set (torch.Tensor): ``(B, L)`` bool, the set per sample.
        sq_dist (torch.Tensor): ``(L, L)`` output of
            :func:`grid_sq_distances`.

    Returns:
        torch.Tensor: ``(B, L)`` float; ``inf`` everywhere for an empty set.
    """
    inf = torch.tensor(float('inf'), device=sq_dist.device)
    # (B, L_set, L): rows outside the set never win the min
    masked = torch.where(in_set[:, :, None], sq_dist[None], inf)
    return masked.amin(dim=1)


def furthest_sampling(
        candidates: torch.Tensor, seeds: torch.Tensor, num_samples: int,
        sq_dist: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Farthest-point sampling on the patch grid, batched.

    Every pick is the candidate cell with the largest distance to the seeds
    and to the cells picked before it, so the picked cells spread evenly
    over the gaps between the seeds. Ties go to the lowest patch index, so
    the result is a deterministic function of the masks (no randomness).
    The loop runs over the picks only; every step is vectorized over the
    batch.

    Args:
        candidates (torch.Tensor): ``(B, L)`` bool, cells that may be picked
            (PR-MIM: the masked patches).
        seeds (torch.Tensor): ``(B, L)`` bool, cells that count as already
            picked (PR-MIM: the visible patches). May be empty.
        num_samples (int): Picks per sample; at most the smallest number of
            candidates in a sample.
        sq_dist (torch.Tensor): ``(L, L)`` output of
            :func:`grid_sq_distances`.

    Returns:
        Tuple[torch.Tensor, torch.Tensor]:

        - ``picked`` (torch.Tensor): ``(B, num_samples)`` long patch indices
          in pick order.
        - ``min_sq_dist`` (torch.Tensor): ``(B, L)`` squared distance of
          every cell to seeds ∪ picked, reusable to order the rest.
    """
    B, L = candidates.shape
    min_sq = min_sq_distance_to_set(seeds, sq_dist)
    available = candidates.clone()
    picked = candidates.new_zeros((B, num_samples), dtype=torch.long)
    neg = torch.tensor(-1., device=sq_dist.device)
    for i in range(num_samples):
        # distances are >= 0 (inf with no seed yet), so -1 never wins
        idx = torch.where(available, min_sq, neg).argmax(dim=1)
        picked[:, i] = idx
        available[torch.arange(B, device=idx.device), idx] = False
        min_sq = torch.minimum(min_sq, sq_dist[idx])
    return picked, min_sq


def random_sampling(
        candidates: torch.Tensor,
        num_samples: int,
        generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Uniform sampling without replacement among candidate cells, batched.

    The ablation of :func:`furthest_sampling` (plain partial reconstruction
    with a random subset of the masked tokens).

    Args:
        candidates (torch.Tensor): ``(B, L)`` bool, cells that may be picked.
        num_samples (int): Picks per sample.
        generator (torch.Generator, optional): Random generator.

    Returns:
        torch.Tensor: ``(B, num_samples)`` long patch indices.
    """
    noise = torch.rand(
        candidates.shape, device=candidates.device, generator=generator)
    # non-candidates sort last
    noise = noise.masked_fill(~candidates, 2.)
    return noise.argsort(dim=1)[:, :num_samples]
