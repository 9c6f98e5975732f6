# Copyright (c) OpenMMLab. All rights reserved.
"""Helpers shared by the tests: paths, a tiny Fashion-MNIST-format dataset,
tool runners and tiny model parts.

``pytest.ini`` puts ``tests/`` on ``sys.path``: test modules import them with
``from helpers import ...``.
"""
import os
import os.path as osp
import struct
import subprocess
import sys

import numpy as np

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
VENV_BIN = osp.dirname(sys.executable)
DEMO_CONFIG = osp.join(
    REPO_ROOT, 'configs/mae/mae_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py')


def write_idx(folder: str, prefix: str, images: np.ndarray,
              labels: np.ndarray) -> None:
    """Write images/labels in the (uncompressed) MNIST IDX format."""
    n, h, w = images.shape
    with open(osp.join(folder, f'{prefix}-images-idx3-ubyte'), 'wb') as f:
        f.write(struct.pack('>IIII', 2051, n, h, w))
        f.write(images.astype(np.uint8).tobytes())
    with open(osp.join(folder, f'{prefix}-labels-idx1-ubyte'), 'wb') as f:
        f.write(struct.pack('>II', 2049, n))
        f.write(labels.astype(np.uint8).tobytes())


def make_fake_fmnist(folder: str,
                     n_train: int = 320,
                     n_test: int = 64,
                     seed: int = 0) -> str:
    """Create a class-structured 28x28 gray dataset in IDX format.

    Each class is a bright horizontal bar at its own height plus noise, so a
    classifier on any reasonable feature can tell classes apart.
    """
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    for prefix, n in (('train', n_train), ('t10k', n_test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 40, size=(n, 28, 28))
        for i, c in enumerate(labels):
            images[i, 2 + 2 * c:4 + 2 * c, 4:24] = 220
        write_idx(folder, prefix, images, labels)
    return folder


def subprocess_env() -> dict:
    """Environment for tool subprocesses: the venv first on PATH."""
    env = dict(os.environ)
    env['PATH'] = VENV_BIN + os.pathsep + env.get('PATH', '')
    env['PYTHONPATH'] = REPO_ROOT + os.pathsep + env.get('PYTHONPATH', '')
    env['PYTHON'] = sys.executable
    env.setdefault('OMP_NUM_THREADS', '1')
    env['PORT'] = str(free_port())  # for tools/dist_*.sh
    return env


def run_tool(args: list, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``python *args`` from the repository root; assert it succeeded."""
    proc = subprocess.run([sys.executable, *args],
                          cwd=REPO_ROOT,
                          env=subprocess_env(),
                          capture_output=True,
                          text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def small_run_options(data_root: str,
                      batch_size: int = 32,
                      num_samples: int = 64) -> list:
    """--cfg-options for a 2-iteration epoch on the fake dataset."""
    return [
        f'train_dataloader.dataset.data_prefix={data_root}',
        f'train_dataloader.dataset.indices={num_samples}',
        f'train_dataloader.batch_size={batch_size}',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'train_cfg.max_epochs=1',
        'default_hooks.logger.interval=1',
    ]


# Tiny MAE-style parts shared by the model tests: 16-px single-channel images
# in 4-px patches (16 patches), a 32-wide encoder and a 16-wide decoder.
TINY_ARCH = dict(
    embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64)
TINY_NECK = dict(
    type='MAEPretrainDecoder',
    num_patches=16,
    patch_size=4,
    in_chans=1,
    embed_dim=32,
    decoder_embed_dim=16,
    decoder_depth=1,
    decoder_num_heads=2)
TINY_HEAD = dict(
    type='MAEPretrainHead',
    norm_pix=True,
    patch_size=4,
    in_channels=1,
    loss=dict(type='PixelReconstructionLoss', criterion='L2'))


def tiny_backbone(type: str = 'MAEViT', **kwargs) -> dict:
    """Config of a tiny ViT encoder matching TINY_NECK/TINY_HEAD."""
    import copy
    cfg = dict(
        type=type,
        arch=copy.deepcopy(TINY_ARCH),
        img_size=16,
        patch_size=4,
        patch_cfg=dict(in_channels=1))
    cfg.update(kwargs)
    return cfg


FMNIST_CONFIGS = dict(
    localmim=osp.join(
        REPO_ROOT, 'configs/localmim/'
        'localmim_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py'),
    mae=osp.join(
        REPO_ROOT,
        'configs/mae/mae_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py'))


def tiny_fmnist_config(method: str, folder: str):
    """A method's Fashion-MNIST config shrunk to ``TINY_ARCH`` (LocalMIM:
    a tap after each of the 4 layers); dumped to ``folder``.

    Returns:
        tuple[str, Config]: The dumped file and the config.
    """
    from mmengine.config import Config
    cfg = Config.fromfile(FMNIST_CONFIGS[method])
    cfg.model.backbone.arch = dict(TINY_ARCH)  # 4 layers, 32 wide
    if method == 'localmim':
        cfg.model.backbone.out_indices = [0, 1, 2, 3]
    cfg.model.neck.update(
        embed_dim=32, decoder_embed_dim=16, decoder_num_heads=2)
    path = osp.join(folder, f'{method}_tiny.py')
    cfg.dump(path)
    return path, cfg


def save_random_checkpoint(model_cfg: dict,
                           path: str,
                           jitter: float = 0.0) -> str:
    """Build a model, initialise it (plus ``jitter`` * N(0, 1) on every
    parameter, so norms differ from their init) and save its state dict."""
    import torch
    from mmpretrain.registry import MODELS

    import mim_plugins  # noqa: F401
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()
    if jitter:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(jitter * torch.randn_like(p))
    torch.save(dict(state_dict=model.state_dict()), path)
    return path


def run_scoring_tool(tool: str, config: str, checkpoint: str, data_root: str,
                     out: str, *extra: str) -> list:
    """Run a Fashion-MNIST scoring tool on a tiny budget; its json rows."""
    import json
    import subprocess
    res = subprocess.run([
        sys.executable, tool, config, checkpoint, '--data-root', data_root,
        '--eval-train-samples', '200', '--eval-test-samples', '64',
        '--probe-epochs', '5', '--out', out, *extra
    ],
                         env=subprocess_env(),
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    name = osp.splitext(osp.basename(tool))[0]
    with open(osp.join(out, f'{name}.json')) as f:
        return json.load(f)['rows']
