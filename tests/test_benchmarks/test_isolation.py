# Copyright (c) OpenMMLab. All rights reserved.
"""The plugin never loads the measuring code of the analysis tools."""
import json
import subprocess
import sys
import textwrap

from helpers import REPO_ROOT

# one tiny config per algorithm and composition, and a fine-tune config
CONFIGS = [
    'configs/mae/mae_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py',
    'configs/bim/bim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py',
    'configs/prmim/prmim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py',
    'configs/prmim/bim-prmim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py',
    'configs/prmim/mixmim-prmim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py',
    'configs/mixmim/mixmim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py',
    'configs/localmim/localmim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py',
    'configs/localmim/'
    'bim-localmim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py',
    'configs/bim/benchmarks/vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py',
]
# the measuring code, the budget runner and its fine-tune loop
MEASURING = ('mim_plugins.benchmarks', )

SCRIPT = textwrap.dedent("""
    import json, sys
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    def loaded():
        return sorted(m for m in sys.modules if m.startswith(MEASURING))

    import mim_plugins
    from mim_plugins.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    from mmpretrain.registry import MODELS
    after_import = loaded()
    for path in CONFIGS:
        cfg = Config.fromfile(path)
        init_cfg = cfg.model.get('backbone', {}).get('init_cfg')
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            cfg.model.backbone.init_cfg = None  # no checkpoint to load
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            MODELS.build(cfg.model).init_weights()
    after_build = loaded()
    import mim_plugins.benchmarks  # the check sees it once imported
    print(json.dumps(dict(after_import=after_import, after_build=after_build,
                          control=loaded())))
""")


def test_plugin_loads_no_measuring_code():
    # a fresh interpreter: other tests may have imported the tools' code
    script = f'MEASURING = {MEASURING!r}\nCONFIGS = {CONFIGS!r}\n' + SCRIPT
    proc = subprocess.run([sys.executable, '-c', script],
                          cwd=REPO_ROOT,
                          capture_output=True,
                          text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result['after_import'] == [], result
    assert result['after_build'] == [], result
    assert 'mim_plugins.benchmarks' in result['control']
