# Copyright (c) OpenMMLab. All rights reserved.
"""Model zoo: metafiles, model-index, ModelHub lookup and ``mim search``."""
import ast
import glob
import os.path as osp
import re
import subprocess

import pytest
import yaml
from helpers import REPO_ROOT, VENV_BIN, subprocess_env

ALGOS = ('mae', 'bim', 'prmim', 'mixmim', 'localmim')
METAFILES = [f'configs/{algo}/metafile.yml' for algo in ALGOS]
TINY = 'bim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist'
# the plugin's configs of mmpretrain's own recipes (plus the plugin's hooks):
# mmpretrain's model index lists them, the plugin's does not re-list them
MMPRETRAIN_RECIPES = {
    'mae_vit-base-p16_8xb512-amp-coslr-300e_in1k':
    'configs/mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py',
    'vit-base-p16_mae-300e-pre_8xb128-coslr-100e_in1k':
    'configs/mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py',
    'vit-base-p16_mae-300e-pre_8xb2048-linear-coslr-90e_in1k':
    'configs/mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py',
    'mixmim_mixmim-base_16xb128-coslr-300e_in1k':
    'configs/mixmim/mixmim_mixmim-base_16xb128-coslr-300e_in1k.py',
    'mixmim-base_mixmim-pre_8xb128-coslr-100e_in1k':
    'configs/mixmim/benchmarks/mixmim-base_8xb128-coslr-100e_in1k.py',
}
# weights published in mmpretrain's model zoo (exact URLs)
MMPRETRAIN_WEIGHTS = {
    'mixmim_mixmim-base_16xb128-coslr-300e_in1k':
    'https://download.openmmlab.com/mmselfsup/1.x/mixmim/'
    'mixmim-base-p16_16xb128-coslr-300e_in1k/'
    'mixmim-base-p16_16xb128-coslr-300e_in1k_20221208-44fe8d2c.pth',
    'mixmim-base_mixmim-pre_8xb128-coslr-100e_in1k':
    'https://download.openmmlab.com/mmselfsup/1.x/mixmim/'
    'mixmim-base-p16_16xb128-coslr-300e_in1k/'
    'mixmim-base-p16_ft-8xb128-coslr-100e_in1k/'
    'mixmim-base-p16_ft-8xb128-coslr-100e_in1k_20221208-41ecada9.pth',
}
MODEL_KEYS = {'Name', 'Metadata', 'In Collection', 'Results', 'Config'}
MODEL_META = {'Epochs', 'Batch Size', 'FLOPs', 'Parameters', 'Training Data'}
COLLECTION_META = {
    'Training Data', 'Training Techniques', 'Training Resources',
    'Architecture'
}


def load_yaml(rel: str) -> dict:
    with open(osp.join(REPO_ROOT, rel), encoding='utf-8') as f:
        return yaml.safe_load(f)


@pytest.fixture(scope='module')
def metafiles() -> dict:
    return {rel: load_yaml(rel) for rel in METAFILES}


def all_models(metafiles: dict) -> list:
    return [m for meta in metafiles.values() for m in meta['Models']]


def config_bases(rel: str) -> list:
    """The ``_base_`` entries of a config file, as written."""
    with open(osp.join(REPO_ROOT, rel), encoding='utf-8') as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                getattr(t, 'id', None) == '_base_' for t in node.targets):
            bases = ast.literal_eval(node.value)
            return [bases] if isinstance(bases, str) else list(bases)
    return []


def mmpretrain_index_names() -> set:
    """The names in mmpretrain's own model index."""
    import mmpretrain
    from modelindex.load_model_index import load
    index = load(
        osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'model-index.yml'))
    index.build_models_with_collections()
    return {m.name.lower() for m in index.models}


def test_model_index_imports_every_metafile():
    index = load_yaml('model-index.yml')
    imports = index['Import']
    assert sorted(imports) == sorted(METAFILES)
    for rel in imports:
        assert osp.isfile(osp.join(REPO_ROOT, rel)), rel
    # no algorithm folder with a metafile is left out
    found = glob.glob(osp.join(REPO_ROOT, 'configs', '*', 'metafile.yml'))
    assert {osp.relpath(p, REPO_ROOT) for p in found} == set(imports)


def test_collections(metafiles):
    for rel, meta in metafiles.items():
        assert set(meta) == {'Collections', 'Models'}, rel
        (coll, ) = meta['Collections']
        assert COLLECTION_META <= set(coll['Metadata']), rel
        assert re.fullmatch(r'https://arxiv\.org/abs/\d{4}\.\d{5}',
                            coll['Paper']['URL'])
        assert coll['Paper']['Title']
        assert osp.isfile(osp.join(REPO_ROOT, coll['README'])), rel
        code = coll['Code']['URL']
        assert code.startswith('https://') or osp.isfile(
            osp.join(REPO_ROOT, code)), code
        for model in meta['Models']:
            assert model['In Collection'] == coll['Name']


def test_models(metafiles):
    models = all_models(metafiles)
    names = [m['Name'] for m in models]
    assert len(names) == len(set(names)), 'model names must be unique'
    # ModelHub keys are lower case; its duplicate check compares the name
    assert all(n == n.lower() for n in names)
    upstream = mmpretrain_index_names()
    configs = set()
    for model in models:
        name = model['Name']
        assert MODEL_KEYS <= set(model), name
        assert MODEL_META <= set(model['Metadata']), name
        meta = model['Metadata']
        for key in ('Epochs', 'Batch Size', 'FLOPs', 'Parameters'):
            assert isinstance(meta[key], int) and meta[key] > 0, (name, key)
        # the name is the config's, with the pre-train tag for benchmarks
        config = model['Config']
        assert osp.isfile(osp.join(REPO_ROOT, config)), config
        configs.add(config)
        if '/benchmarks/' not in config:
            assert osp.basename(config) == f'{name}.py'
        else:
            assert '-pre_' in name, name
        weights = model.get('Weights')
        assert weights is None or weights.startswith('https://'), name
        if model['Results'] is not None:
            for result in model['Results']:
                assert {'Task', 'Dataset', 'Metrics'} <= set(result)
        for downstream in model.get('Downstream', []):
            assert downstream in names or downstream in upstream, downstream
    # every pre-training and benchmark config of the algorithms is listed,
    # here or (mmpretrain's recipes) in mmpretrain's index
    on_disk = {
        osp.relpath(p, REPO_ROOT)
        for algo in ALGOS
        for p in glob.glob(
            osp.join(REPO_ROOT, 'configs', algo, '**', '*.py'), recursive=True)
    }
    assert on_disk == configs | set(MMPRETRAIN_RECIPES.values())
    assert not configs & set(MMPRETRAIN_RECIPES.values())


def test_no_weights_until_published(metafiles):
    weights = [m['Name'] for m in all_models(metafiles) if m.get('Weights')]
    # plugin-trained models are listed without weights until published
    assert not any(
        n.startswith(('bim_', 'prmim', 'localmim_')) for n in weights)


def test_mmpretrain_recipes_are_not_relisted(metafiles):
    """mmpretrain's public ``register_model_index`` takes the plugin's index
    as it is: no name mmpretrain defines is listed again."""
    import mmpretrain
    from mmpretrain.apis import ModelHub

    from mim_plugins.apis import register_models
    upstream = mmpretrain_index_names()
    names = {m['Name'] for m in all_models(metafiles)}
    assert not names & upstream
    assert set(MMPRETRAIN_RECIPES) <= upstream
    assert register_models() == register_models()  # registers once
    assert set(register_models()) == names
    upstream_configs = osp.join(osp.dirname(mmpretrain.__file__), '.mim')
    for name, config in MMPRETRAIN_RECIPES.items():
        # the name finds mmpretrain's recipe, the one the plugin's config
        # inherits (same path under mmpretrain's configs/)
        metainfo = ModelHub.get(name)
        assert osp.samefile(metainfo.config.filename,
                            osp.join(upstream_configs, config)), name
        assert f"mmpretrain::{config[len('configs/'):]}" in config_bases(
            config)
        assert metainfo.weights == MMPRETRAIN_WEIGHTS.get(
            name, metainfo.weights)
    for name, url in MMPRETRAIN_WEIGHTS.items():
        assert ModelHub.get(name).weights == url


def test_list_and_get_model():
    import torch

    from mim_plugins.apis import get_model, list_models, plugin_model_names
    names = plugin_model_names()
    assert TINY in names
    assert TINY in list_models('bim_*')
    assert list_models('bim_*') == sorted(
        n for n in names if n.startswith('bim_'))
    # mmpretrain's own names are left out unless asked for
    assert 'resnet50_8xb32_in1k' not in list_models('resnet50')
    assert 'resnet50_8xb32_in1k' in list_models('resnet50', plugin_only=False)
    # mmpretrain's list_models sees the plugin's models once registered
    import mmpretrain
    assert TINY in mmpretrain.list_models('bim_vit-tiny')

    model = get_model(TINY)
    assert type(model).__name__ == 'BIM'
    assert type(model.backbone).__name__ == 'BIMViT'
    assert not model.training
    inputs = torch.rand(2, 1, 32, 32)
    (feats, ) = model.extract_feat(inputs)
    assert feats.shape == (2, 65, 192)  # cls + 8x8 patches, ViT-Tiny
    classifier = get_model(
        'vit-tiny-p4_bim-10e-pre_1xb256-coslr-10e_fashion-mnist')
    assert classifier(inputs).shape == (2, 10)
    with pytest.raises(ValueError, match='Failed to find'):
        get_model('no-such-model_1xb1_nowhere')


def test_mim_search_lists_models():
    # mim reads mim_plugins/.mim/model-index.yml of the installed package,
    # no network
    proc = subprocess.run([osp.join(VENV_BIN, 'mim'), 'search', 'mim_plugins'],
                          capture_output=True,
                          text=True,
                          env=subprocess_env(),
                          cwd='/')
    assert proc.returncode == 0, proc.stdout[-1000:] + proc.stderr[-2000:]
    assert TINY in proc.stdout
    assert 'localmim_vit-base-p16_8xb256-amp-coslr-1600e_in1k' in proc.stdout
