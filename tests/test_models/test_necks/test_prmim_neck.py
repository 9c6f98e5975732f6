# Copyright (c) OpenMMLab. All rights reserved.
import math

import pytest
import torch
from mmpretrain.models import MAEPretrainDecoder

from mim_plugins.models.necks import PRMIMPretrainDecoder
from mim_plugins.models.utils import furthest_sampling, grid_sq_distances

# 8 x 8 patch grid, 16 visible (mask_ratio 0.75), tiny decoder
L, V, C_ENC, C_DEC, P = 64, 16, 32, 32, 4
DECODER_KWARGS = dict(
    num_patches=L,
    patch_size=2,
    in_chans=1,
    embed_dim=C_ENC,
    decoder_embed_dim=C_DEC,
    decoder_depth=2,
    decoder_num_heads=2,
    mlp_ratio=2)


def _neck(**kwargs):
    torch.manual_seed(0)
    neck = PRMIMPretrainDecoder(**DECODER_KWARGS, **kwargs)
    neck.init_weights()
    return neck


def _inputs(batch=3, seed=0):
    """Encoder output and MAE-style ``ids_restore`` for ``V`` visible."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 1 + V, C_ENC, generator=g)
    ids_shuffle = torch.rand(batch, L, generator=g).argsort(dim=1)
    return x, ids_shuffle.argsort(dim=1)


def _decoder_features(neck, x, ids_restore):
    """Run the neck and capture the pre-norm output of the last block."""
    seen = {}

    def first_hook(module, args):
        seen['in_shape'] = tuple(args[0].shape)

    def last_hook(module, args, output):
        seen['feats'] = output[:, 1:]

    h1 = neck.decoder_blocks[0].register_forward_pre_hook(first_hook)
    h2 = neck.decoder_blocks[-1].register_forward_hook(last_hook)
    try:
        out = neck(x, ids_restore)
    finally:
        h1.remove()
        h2.remove()
    return out, seen


def _reference_partial(neck, x, ids_restore, decoded):
    """Per-sample plain partial reconstruction with the neck's modules."""
    preds = []
    pos = neck.decoder_pos_embed[0]
    for b in range(x.shape[0]):
        tok = neck.decoder_embed(x[b])
        full = [neck.mask_token[0, 0]] * L
        for j in range(L):
            r = int(ids_restore[b, j])
            if r < V:
                full[j] = tok[1 + r]
        cells = decoded[b].nonzero().flatten().tolist()
        seq = torch.stack([tok[0] + pos[0]] +
                          [full[j] + pos[1 + j] for j in cells])[None]
        for blk in neck.decoder_blocks:
            seq = blk(seq)
        preds.append((cells, neck.decoder_pred(neck.decoder_norm(seq))[0, 1:]))
    return preds


def _split_sizes(n, parts):
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


def _reference_thrown(neck, feats, decoded, thrown):
    """Per-sample, pure-Python progressive reconstruction (the reference)."""
    side = int(math.isqrt(L))

    def d2(a, b):
        return (a // side - b // side)**2 + (a % side - b % side)**2

    pos = neck.decoder_pos_embed[0, 1:]
    out = []
    for b in range(feats.shape[0]):
        cand_pos = decoded[b].nonzero().flatten().tolist()
        cand_feat = list(feats[b])
        todo = thrown[b].nonzero().flatten().tolist()
        todo.sort(key=lambda t: (min(d2(t, c) for c in cand_pos), t))
        result, start = {}, 0
        for size in _split_sizes(len(todo), neck.num_waves):
            wave = todo[start:start + size]
            start += size
            new_feat = []
            for q in wave:
                ranked = sorted(
                    range(len(cand_pos)),
                    key=lambda i: (d2(q, cand_pos[i]), i))[:neck.k]
                w = torch.tensor(
                    [1 / math.sqrt(d2(q, cand_pos[i])) for i in ranked])
                w = w / w.sum()
                mixed = sum(wi * cand_feat[i] for wi, i in zip(w, ranked))
                new_feat.append(mixed + neck.mask_token[0, 0] + pos[q])
            for q, f in zip(wave, new_feat):
                cand_pos.append(q)
                cand_feat.append(f)
                result[q] = neck.decoder_pred(neck.decoder_norm(f))
        out.append(result)
    return out


@pytest.mark.parametrize('throw_ratio', [0.25, 0.5, 0.7])
@pytest.mark.parametrize('sampling', ['furthest', 'random'])
def test_token_counts(throw_ratio, sampling):
    neck = _neck(throw_ratio=throw_ratio, sampling=sampling)
    x, ids_restore = _inputs()
    (pred, kept, thrown), seen = _decoder_features(neck, x, ids_restore)
    num_thrown = int(L * throw_ratio)
    num_kept = (L - V) - num_thrown
    masked = (ids_restore >= V).float()

    assert pred.shape == (3, L, P)
    assert torch.all(kept.sum(1) == num_kept)
    assert torch.all(thrown.sum(1) == num_thrown)
    # kept and thrown split the masked tokens
    assert torch.equal(kept + thrown, masked)
    assert not torch.any(kept * thrown)
    # the decoder transformer sees [CLS] + visible + kept only
    assert seen['in_shape'] == (3, 1 + V + num_kept, C_DEC)


def test_furthest_kept_set_is_the_fps_choice():
    neck = _neck(throw_ratio=0.5)
    x, ids_restore = _inputs()
    _, kept, _ = neck(x, ids_restore)
    visible = ids_restore < V
    picks, _ = furthest_sampling(~visible, visible, 16,
                                 grid_sq_distances((8, 8)))
    for b in range(3):
        assert set(kept[b].nonzero().flatten().tolist()) == set(
            picks[b].tolist())
    # deterministic given the mask
    pred1, kept1, _ = neck(x, ids_restore)
    pred2, kept2, _ = neck(x, ids_restore)
    assert torch.equal(kept1, kept2) and torch.equal(pred1, pred2)


def test_thrown_path_none_is_plain_partial_reconstruction():
    neck = _neck(throw_ratio=0.5, thrown_path='none')
    x, ids_restore = _inputs()
    with torch.no_grad():
        pred, kept, thrown = neck(x, ids_restore)
        decoded = (ids_restore < V) | kept.bool()
        ref = _reference_partial(neck, x, ids_restore, decoded)
    for b, (cells, ref_pred) in enumerate(ref):
        torch.testing.assert_close(
            pred[b, cells], ref_pred, rtol=1e-5, atol=1e-5)
    # thrown tokens get no prediction
    assert torch.all(pred[thrown.bool()] == 0)


def test_progressive_path_leaves_decoded_tokens_unchanged():
    x, ids_restore = _inputs()
    with torch.no_grad():
        pred_p, kept_p, thrown_p = _neck(throw_ratio=0.5)(x, ids_restore)
        pred_n, kept_n, _ = _neck(
            throw_ratio=0.5, thrown_path='none')(x, ids_restore)
    assert torch.equal(kept_p, kept_n)
    decoded = ~thrown_p.bool()
    assert torch.equal(pred_p[decoded], pred_n[decoded])
    assert torch.all(pred_p[thrown_p.bool()].abs().sum(-1) > 0)


@pytest.mark.parametrize('num_waves,k,sampling', [(2, 4, 'furthest'),
                                                  (1, 1, 'furthest'),
                                                  (3, 6, 'random'),
                                                  (100, 2, 'furthest')])
def test_progressive_reconstruction_matches_reference(num_waves, k, sampling):
    neck = _neck(throw_ratio=0.5, num_waves=num_waves, k=k, sampling=sampling)
    x, ids_restore = _inputs()
    with torch.no_grad():
        (pred, kept, thrown), seen = _decoder_features(neck, x, ids_restore)
        decoded = (ids_restore < V) | kept.bool()
        ref = _reference_thrown(neck, seen['feats'], decoded, thrown.bool())
    for b, per_token in enumerate(ref):
        assert len(per_token) == 32
        for q, ref_pred in per_token.items():
            torch.testing.assert_close(
                pred[b, q], ref_pred, rtol=1e-5, atol=1e-5)


def test_throw_ratio_zero_equals_mae_decoder():
    neck = _neck(throw_ratio=0.)
    mae = MAEPretrainDecoder(**DECODER_KWARGS)
    mae.load_state_dict(neck.state_dict())
    x, ids_restore = _inputs()
    with torch.no_grad():
        pred, kept, thrown = neck(x, ids_restore)
        ref = mae(x, ids_restore)
    assert torch.equal(pred, ref)
    assert torch.equal(kept, (ids_restore >= V).float())
    assert not thrown.any()


def test_no_new_parameters():
    neck = _neck(throw_ratio=0.5)
    mae = MAEPretrainDecoder(**DECODER_KWARGS)
    assert neck.state_dict().keys() == mae.state_dict().keys()


def test_gradients_through_thrown_path():
    neck = _neck(throw_ratio=0.5)
    x, ids_restore = _inputs()
    x.requires_grad_(True)
    pred, _, thrown = neck(x, ids_restore)
    (pred * thrown[..., None]).pow(2).sum().backward()
    # thrown tokens reach the head, the final norm, the decoder blocks (via
    # the mixed decoder outputs), the mask token and the encoder output
    for name in [
            'decoder_pred.weight', 'ln1.weight', 'mask_token',
            'decoder_embed.weight', 'decoder_blocks.0.attn.qkv.weight',
            'decoder_blocks.1.ffn.layers.1.weight'
    ]:
        grad = dict(neck.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0


def test_thrown_path_none_gives_thrown_tokens_no_gradient():
    neck = _neck(throw_ratio=0.5, thrown_path='none')
    x, ids_restore = _inputs()
    pred, _, thrown = neck(x, ids_restore)
    (pred * thrown[..., None]).pow(2).sum().backward()
    for name, p in neck.named_parameters():
        assert p.grad is None or not p.grad.any(), name


@pytest.mark.parametrize('kwargs,field', [
    (dict(throw_ratio=-0.1), 'throw_ratio'),
    (dict(throw_ratio=1.0), 'throw_ratio'),
    (dict(throw_ratio=True), 'throw_ratio'),
    (dict(throw_ratio='0.5'), 'throw_ratio'),
    (dict(sampling='attention'), 'sampling'),
    (dict(thrown_path='copy'), 'thrown_path'),
    (dict(num_waves=0), 'num_waves'),
    (dict(num_waves=1.5), 'num_waves'),
    (dict(k=0), 'k'),
    (dict(k=True), 'k'),
])
def test_bad_config(kwargs, field):
    with pytest.raises(ValueError, match=f'`{field}`'):
        PRMIMPretrainDecoder(**DECODER_KWARGS, **kwargs)


def test_bad_num_patches():
    kwargs = dict(DECODER_KWARGS, num_patches=50)
    with pytest.raises(ValueError, match='`num_patches`'):
        PRMIMPretrainDecoder(**kwargs)


def test_no_kept_token_raises_at_forward():
    # 48 masked tokens, int(64 * 0.75) = 48 thrown
    neck = _neck(throw_ratio=0.75)
    x, ids_restore = _inputs()
    with pytest.raises(ValueError, match='`throw_ratio`'):
        neck(x, ids_restore)
