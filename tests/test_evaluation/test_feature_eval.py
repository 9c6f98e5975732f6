# Copyright (c) OpenMMLab. All rights reserved.
import math
import os.path as osp

import pytest
import torch
from helpers import REPO_ROOT

from mim_plugins.evaluation import (build_scoring_model, default_feature,
                                    evaluate_features, knn_classify,
                                    linear_probe, pool_tokens,
                                    top_direction_share)


def test_knn_weighted_vote_by_hand():
    # Bank: two samples of class 0 near +x, one of class 1 exactly on the
    # query direction; with k=3 the class-0 pair outvotes class 1 only when
    # the temperature is large (votes exp(s/T)).
    bank = torch.tensor([[1.0, 0.3], [1.0, -0.3], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    query = torch.tensor([[0.5, 1.0]])
    s = torch.nn.functional.normalize(bank, dim=1) @ \
        torch.nn.functional.normalize(query, dim=1).T
    s = s.squeeze(1)
    for temperature in (0.07, 10.0):
        v0 = math.exp(s[0] / temperature) + math.exp(s[1] / temperature)
        v1 = math.exp(s[2] / temperature)
        expected = 0 if v0 > v1 else 1
        acc = knn_classify(
            bank,
            labels,
            query,
            torch.tensor([expected]),
            k=3,
            temperature=temperature)
        assert acc == 100.0
    # the two temperatures disagree, so the vote weighting matters
    assert knn_classify(bank, labels, query, torch.tensor([1]), k=3,
                        temperature=0.07) != \
        knn_classify(bank, labels, query, torch.tensor([1]), k=3,
                     temperature=10.0)
    with pytest.raises(ValueError, match='k must be'):
        knn_classify(bank, labels, query, torch.tensor([0]), k=4)


def test_knn_k1_is_nearest_neighbour():
    g = torch.Generator().manual_seed(0)
    bank = torch.randn(50, 8, generator=g)
    labels = torch.randint(0, 5, (50, ), generator=g)
    query = bank[:10] * 3  # same directions -> its own label
    assert knn_classify(bank, labels, query, labels[:10], k=1) == 100.0


def test_linear_probe_separable_and_chance():
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(4, 16, generator=g) * 5
    y = torch.arange(400) % 4
    x = centers[y] + torch.randn(400, 16, generator=g)
    assert linear_probe(x[:300], y[:300], x[300:], y[300:], epochs=20) == 100
    noise = torch.randn(400, 16, generator=g)
    acc = linear_probe(noise[:300], y[:300], noise[300:], y[300:], epochs=20)
    assert acc < 50  # no signal -> about chance (25 %)


def test_evaluate_features_keys():
    x = torch.eye(4).repeat(5, 1)
    y = torch.arange(4).repeat(5)
    res = evaluate_features((x, y), (x, y), knn_k=1, probe_epochs=0)
    assert res == dict(knn_top1=100.0)
    res = evaluate_features((x, y), (x, y), knn_k=1, probe_epochs=5)
    assert set(res) == {'knn_top1', 'linear_top1'}


def test_top_direction_share_by_hand():
    # zero-mean, orthogonal u and w: x = [u, u, w] has the correlation matrix
    # [[1, 1, 0], [1, 1, 0], [0, 0, 1]], largest eigenvalue 2 of trace 3
    u = torch.tensor([1., -1., 1., -1.])
    w = torch.tensor([1., 1., -1., -1.])
    x = torch.stack([u, u, w], dim=1)
    assert math.isclose(top_direction_share(x), 2 / 3, rel_tol=1e-9)
    # scale and offset per dimension do not matter (standardised first)
    y = x * torch.tensor([10., 0.1, 3.]) + torch.tensor([5., -2., 0.])
    assert math.isclose(top_direction_share(y), 2 / 3, rel_tol=1e-9)
    # one factor drives every dimension: full collapse
    assert math.isclose(
        top_direction_share(torch.outer(u, torch.tensor([1., -2., 3.]))),
        1.,
        rel_tol=1e-9)
    # uncorrelated dimensions share equally; a constant one is ignored
    v = torch.tensor([1., -1., -1., 1.])
    z = torch.stack([u, w, v, torch.full((4, ), 7.)], dim=1)
    assert math.isclose(top_direction_share(z), 1 / 3, rel_tol=1e-9)
    with pytest.raises(ValueError, match='N >= 2'):
        top_direction_share(torch.ones(1, 3))
    with pytest.raises(ValueError, match='constant'):
        top_direction_share(torch.ones(4, 3))


def test_default_feature_shapes():

    class Raw(torch.nn.Module):

        def __init__(self, out):
            super().__init__()
            self.out = out

        def extract_feat(self, inputs):
            return (self.out, )

    tokens = torch.arange(2 * 3 * 4, dtype=torch.float).view(2, 3, 4)
    feat = default_feature(Raw(tokens), None)
    assert torch.equal(feat, tokens[:, 1:].mean(1))  # cls token excluded
    fmap = torch.randn(2, 4, 3, 3)
    assert torch.allclose(default_feature(Raw(fmap), None), fmap.mean((2, 3)))
    # several outputs (LocalMIM's taps): the last one is the feature
    multi = Raw(None)
    multi.extract_feat = lambda inputs: [torch.randn(2, 3, 4), tokens]
    assert torch.equal(default_feature(multi, None), pool_tokens(tokens))
    flat = torch.randn(2, 5)
    assert torch.equal(pool_tokens(flat), flat)


def test_scoring_model_normalises_like_the_runner():
    """Scores must see the config's mean/std, as in training."""
    config = osp.join(
        REPO_ROOT,
        'configs/bim/bim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py')
    cfg, model = build_scoring_model(config)
    assert not model.training
    mean = model.data_preprocessor.mean.flatten()
    assert torch.allclose(mean, torch.tensor(cfg.data_preprocessor.mean))
    std = model.data_preprocessor.std.flatten()
    assert torch.allclose(std, torch.tensor(cfg.data_preprocessor.std))
