# Copyright (c) OpenMMLab. All rights reserved.
import os.path as osp
import re

import numpy as np
import torch
from helpers import run_tool
from mmengine.logging import HistoryBuffer

from mim_plugins.utils.checkpoint import plain_meta


def runner_like_checkpoint(path):
    buf = HistoryBuffer()
    buf.update(0.5)
    torch.save(
        dict(
            meta=dict(
                epoch=3,
                cfg='model = dict()',
                seed=0,
                arr=np.ones(2),
                nested=dict(ok=[1, 'a'], bad=buf)),
            state_dict={
                'backbone.w': torch.ones(2, 3),
                'backbone.ln1.bias': torch.zeros(3),
                'neck.w': torch.full((2, ), 5.)
            },
            optimizer=dict(state={0: dict(exp_avg=torch.zeros(2))}),
            message_hub=dict(log_scalars=dict(loss=buf))), path)


def run(args):
    return run_tool(args).stdout


def test_plain_meta():
    assert plain_meta(dict(a=1, b=np.ones(1), c=[1, np.ones(1), 'x'])) == \
        dict(a=1, c=[1, 'x'])
    assert plain_meta(np.ones(1)) == {}


def test_extract_backbone(tmp_path):
    src = str(tmp_path / 'epoch_3.pth')
    runner_like_checkpoint(src)
    out = str(tmp_path / 'backbone.pth')
    run(['tools/model_converters/extract_backbone.py', src, out])
    ckpt = torch.load(out, weights_only=True)  # tensors and plain data only
    assert set(ckpt['state_dict']) == {'backbone.w', 'backbone.ln1.bias'}
    assert torch.equal(ckpt['state_dict']['backbone.w'], torch.ones(2, 3))
    assert ckpt['meta'] == dict(
        epoch=3, cfg='model = dict()', seed=0, nested=dict(ok=[1, 'a']))

    bare = str(tmp_path / 'bare.pth')
    run([
        'tools/model_converters/extract_backbone.py', src, bare,
        '--strip-prefix'
    ])
    assert set(torch.load(
        bare, weights_only=True)['state_dict']) == {'w', 'ln1.bias'}


def test_publish_model(tmp_path):
    src = str(tmp_path / 'epoch_3.pth')
    runner_like_checkpoint(src)
    out = run([
        'tools/model_converters/publish_model.py', src,
        str(tmp_path / 'mae_tiny.pth'), '--date', '20261124'
    ]).strip()
    assert re.fullmatch(r'.*/mae_tiny_20261124-[0-9a-f]{8}\.pth', out)
    import hashlib
    with open(out, 'rb') as f:
        assert hashlib.sha256(f.read()).hexdigest()[:8] == out[-12:-4]
    ckpt = torch.load(out, weights_only=True)
    assert set(ckpt) == {'state_dict', 'meta'}
    assert set(
        ckpt['state_dict']) == {'backbone.w', 'backbone.ln1.bias', 'neck.w'}
    assert not osp.exists(str(tmp_path / 'mae_tiny.tmp.pth'))
