# Copyright (c) OpenMMLab. All rights reserved.
import itertools
import math

import pytest
import torch

from mim_plugins.models.utils import (furthest_sampling, grid_sq_distances,
                                      min_sq_distance_to_set, random_sampling)


def _random_masks(batch, num_cells, num_seeds, generator):
    """Boolean seed masks with ``num_seeds`` cells per row."""
    noise = torch.rand(batch, num_cells, generator=generator)
    ids = noise.argsort(dim=1)[:, :num_seeds]
    seeds = torch.zeros(batch, num_cells, dtype=torch.bool)
    seeds[torch.arange(batch)[:, None], ids] = True
    return seeds


def _brute_force_fps(candidates, seeds, num_samples, grid_size):
    """Per-sample, pure-Python farthest-point sampling (the reference)."""
    rows, cols = grid_size
    coords = [(i // cols, i % cols) for i in range(rows * cols)]

    def dist2(a, b):
        return (coords[a][0] - coords[b][0])**2 + (coords[a][1] -
                                                   coords[b][1])**2

    out = []
    for cand, seed in zip(candidates.tolist(), seeds.tolist()):
        chosen = [i for i, s in enumerate(seed) if s]
        free = [i for i, c in enumerate(cand) if c]
        picks = []
        for _ in range(num_samples):
            best, best_d = None, -1.
            for j in free:  # ascending index: ties keep the lowest
                d = min((dist2(j, c) for c in chosen), default=math.inf)
                if d > best_d:
                    best, best_d = j, d
            picks.append(best)
            chosen.append(best)
            free.remove(best)
        out.append(picks)
    return out


def test_grid_sq_distances():
    d = grid_sq_distances((2, 3))
    assert d.shape == (6, 6)
    # cell 0 = (0, 0), cell 5 = (1, 2)
    assert d[0, 5] == 1 + 4
    assert d[5, 0] == 5
    assert torch.all(d.diagonal() == 0)


@pytest.mark.parametrize('grid_size,num_seeds,num_samples', [((4, 4), 4, 6),
                                                             ((8, 8), 16, 16),
                                                             ((5, 7), 9, 10),
                                                             ((4, 4), 0, 5),
                                                             ((8, 8), 16, 48)])
def test_furthest_sampling_matches_brute_force(grid_size, num_seeds,
                                               num_samples):
    g = torch.Generator().manual_seed(0)
    L = grid_size[0] * grid_size[1]
    seeds = _random_masks(4, L, num_seeds, g)
    candidates = ~seeds
    sq = grid_sq_distances(grid_size)
    picked, min_sq = furthest_sampling(candidates, seeds, num_samples, sq)

    assert picked.shape == (4, num_samples)
    assert picked.dtype == torch.long
    assert picked.tolist() == _brute_force_fps(candidates, seeds, num_samples,
                                               grid_size)
    # the returned distances are those to seeds ∪ picked
    covered = seeds.clone()
    covered[torch.arange(4)[:, None], picked] = True
    for b, j in itertools.product(range(4), range(L)):
        ref = min(sq[j, c].item() for c in covered[b].nonzero().flatten())
        assert min_sq[b, j].item() == ref


def test_furthest_sampling_picks_candidates_once():
    g = torch.Generator().manual_seed(1)
    seeds = _random_masks(3, 64, 16, g)
    picked, _ = furthest_sampling(~seeds, seeds, 16, grid_sq_distances((8, 8)))
    for row, seed in zip(picked, seeds):
        assert len(set(row.tolist())) == 16
        assert not seed[row].any()


def test_furthest_sampling_deterministic_and_batch_independent():
    g = torch.Generator().manual_seed(2)
    seeds = _random_masks(4, 64, 16, g)
    sq = grid_sq_distances((8, 8))
    a, _ = furthest_sampling(~seeds, seeds, 16, sq)
    torch.manual_seed(123)  # global RNG state must not matter
    b, _ = furthest_sampling(~seeds, seeds, 16, sq)
    assert torch.equal(a, b)
    # one sample alone gives the same picks as inside the batch
    for i in range(4):
        alone, _ = furthest_sampling(~seeds[i:i + 1], seeds[i:i + 1], 16, sq)
        assert torch.equal(alone[0], a[i])


def _min_pairwise_sq(cells, sq):
    sub = sq[cells][:, cells] + torch.eye(len(cells)) * 1e9
    return sub.min().item()


def test_furthest_spreads_more_than_random():
    """Kept sets are better spread (mean over many masks) than random."""
    g = torch.Generator().manual_seed(3)
    sq = grid_sq_distances((14, 14))
    seeds = _random_masks(64, 196, 49, g)
    fps, fps_cover = furthest_sampling(~seeds, seeds, 49, sq)
    rnd = random_sampling(~seeds, 49, generator=g)

    fps_min = [_min_pairwise_sq(row, sq) for row in fps]
    rnd_min = [_min_pairwise_sq(row, sq) for row in rnd]
    assert sum(fps_min) / 64 >= sum(rnd_min) / 64
    assert min(fps_min) >= 1

    # covering radius: farthest cell from visible ∪ kept
    covered = seeds.clone()
    covered[torch.arange(64)[:, None], rnd] = True
    rnd_cover = min_sq_distance_to_set(covered, sq)
    assert fps_cover.amax(1).float().mean() <= rnd_cover.amax(1).float().mean()


def test_random_sampling():
    g = torch.Generator().manual_seed(4)
    seeds = _random_masks(4, 64, 16, g)
    picked = random_sampling(~seeds, 20, generator=g)
    assert picked.shape == (4, 20)
    for row, seed in zip(picked, seeds):
        assert len(set(row.tolist())) == 20
        assert not seed[row].any()
    again = random_sampling(
        ~seeds, 20, generator=torch.Generator().manual_seed(5))
    assert not torch.equal(picked, again)


def test_min_sq_distance_to_empty_set_is_inf():
    empty = torch.zeros(2, 16, dtype=torch.bool)
    assert torch.isinf(
        min_sq_distance_to_set(empty, grid_sq_distances((4, 4)))).all()
