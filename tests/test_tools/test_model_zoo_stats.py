# Copyright (c) OpenMMLab. All rights reserved.
"""tools/analysis_tools/model_zoo_stats.py reproduces the metafiles'
Parameters and FLOPs (and mmpretrain's own MAE ViT-B FLOPs)."""
import json
import os.path as osp
import subprocess
import sys

import pytest
import yaml
from helpers import REPO_ROOT, subprocess_env

TOOL = osp.join(REPO_ROOT, 'tools/analysis_tools/model_zoo_stats.py')
# window 14, and 7 on the 7x7 last stage
SWIN_L = 'configs/localmim/benchmarks/swin-large-w14_8xb32-coslr-100e_in1k.py'


def metafile_entry(algo, config):
    if algo == 'mae':
        # mmpretrain's recipe: listed in mmpretrain's metafile, not ours
        from mmpretrain.apis import ModelHub
        meta = ModelHub.get(osp.basename(config)[:-3]).metadata
        return dict(
            Metadata=dict(Parameters=meta.parameters, FLOPs=meta.flops))
    with open(osp.join(REPO_ROOT, 'configs', algo, 'metafile.yml')) as f:
        models = yaml.safe_load(f)['Models']
    return next(m for m in models if m['Config'] == config)


@pytest.mark.parametrize('algo,config', [
    ('bim', 'configs/bim/bim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py'),
    ('prmim',
     'configs/prmim/prmim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py'),
    ('mae', 'configs/mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py'),
    ('localmim', SWIN_L),
])
def test_metafile_numbers_are_measured(algo, config):
    # a subprocess: the tool swaps mmpretrain's attention for its Python
    # implementation, which must not leak into other tests
    res = subprocess.run([sys.executable, TOOL, config],
                         cwd=REPO_ROOT,
                         env=subprocess_env(),
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    stats = json.loads(res.stdout[res.stdout.index('{'):])[config]
    entry = metafile_entry(algo, config)['Metadata']
    assert stats == dict(params=entry['Parameters'], flops=entry['FLOPs'])
    if algo == 'mae':  # mmpretrain's metafile: 17.58 GFLOPs, 111.91 M
        assert stats == dict(params=111907840, flops=17581972224)
