# Copyright (c) OpenMMLab. All rights reserved.
"""tools/benchmarks/soak_resume.py: resumed and uninterrupted curves."""
import json
import os.path as osp
import sys
from types import SimpleNamespace

from helpers import REPO_ROOT
from mmengine.config import Config

sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'benchmarks'))
import soak_resume  # noqa: E402


def curve(values, key='loss'):
    return [{'iter': i + 1, key: v} for i, v in enumerate(values)]


def test_compare_losses():
    same = soak_resume.compare_losses(
        curve([1.0, 0.5]), curve([1.0, 0.5]), iters=2)
    assert same == dict(max_abs_loss_diff=0.0, identical=True, complete=True)
    # the smallest float32-sized difference counts
    diff = soak_resume.compare_losses(
        curve([1.0, 0.5]), curve([1.0, 0.5 + 2**-24]), iters=2)
    assert diff['identical'] is False
    assert diff['max_abs_loss_diff'] == 2**-24
    # a missing iteration (e.g. a segment that did not run) is not identical
    short = soak_resume.compare_losses(
        curve([1.0, 0.5]), curve([1.0]), iters=2)
    assert short['identical'] is False and short['complete'] is False
    # a loss entry only one run has
    keys = soak_resume.compare_losses(
        curve([1.0]), curve([1.0], key='loss_block1'), iters=1)
    assert keys['identical'] is False


def test_soak_quick(fmnist_root, tmp_path, capsys):
    out = str(tmp_path / 'soak')
    # --jobs 2: the uninterrupted and resumed runs side by side
    results = soak_resume.main([
        '--methods', 'mae', '--quick', '--jobs', '2', '--data-root',
        fmnist_root, '--out', out
    ])
    assert len(results) == 1
    r = results[0]
    assert (r['iters'], r['resume_every'], r['batch_size']) == (20, 10, 4)
    assert r['segments'] == 2
    assert r['complete'] and r['identical'], r
    assert r['max_abs_loss_diff'] == 0.0
    # memory recorded at every resume point of both runs, by the processes
    # of the segments (two of them in the resumed run)
    assert [m['iter'] for m in r['full_memory']] == [10, 20]
    assert [m['iter'] for m in r['resumed_memory']] == [10, 20]
    assert len({m['pid'] for m in r['resumed_memory']}) == 2
    assert all(m['rss_mb'] > 0 and m['peak_rss_mb'] >= m['rss_mb']
               for m in r['full_memory'] + r['resumed_memory'])

    # the losses are those of 20 iterations, resumed after iteration 10
    resumed_dir = osp.join(out, 'mae', 'resumed')
    losses = soak_resume.read_jsonl(
        osp.join(resumed_dir, soak_resume.LOSSES_FILE))
    assert [x['iter'] for x in losses] == list(range(1, 21))
    assert osp.isfile(osp.join(resumed_dir, 'iter_10.pth'))
    with open(osp.join(resumed_dir, 'segment_end.log')) as f:
        assert 'resumed epoch: 0, iter: 10' in f.read()

    with open(osp.join(out, 'soak_resume.json')) as f:
        saved = json.load(f)
    assert saved['results'][0]['identical'] is True
    with open(osp.join(out, 'soak_resume.md')) as f:
        table = f.read()
    assert '| mae | 10 |' in table and '| mae | 20 |' in table
    assert '| yes |' in table
    assert table in capsys.readouterr().out


def test_segments_do_not_share_config(tmp_path, monkeypatch):
    """Each segment dumps its own stop iteration; the shared config (read by
    the two runs' threads with --jobs 2) is left alone."""
    monkeypatch.setattr(soak_resume.subprocess, 'run',
                        lambda *a, **k: SimpleNamespace(returncode=0))
    args = soak_resume.parse_args(['--quick', '--data-root', str(tmp_path)])
    cfg = soak_resume.soak_config(soak_resume.method_config('mae'), args)
    soak_resume.train_segment(cfg, str(tmp_path), 10, None)
    soak_resume.train_segment(cfg, str(tmp_path), None, 'iter_10.pth')
    assert 'stop_at' not in cfg.custom_hooks[-1]
    seg = Config.fromfile(str(tmp_path / 'segment_10.py'))
    end = Config.fromfile(str(tmp_path / 'segment_end.py'))
    assert seg.custom_hooks[-1].stop_at == 10
    assert end.custom_hooks[-1].stop_at is None
    assert seg.train_cfg == dict(type='IterBasedTrainLoop', max_iters=20)
    assert seg.default_hooks.checkpoint.by_epoch is False
    assert seg.default_hooks.checkpoint.interval == 10
