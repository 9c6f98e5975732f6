# Copyright (c) OpenMMLab. All rights reserved.
"""CPU demo: pre-train a tiny ViT on Fashion-MNIST, then score its features.

Steps (``make demo`` runs them with the defaults):

1. pre-train the config's model with mmengine's Runner (progress/ETA logged);
2. extract frozen features of the pre-trained backbone and of the same
   backbone at random initialisation, and score both with weighted kNN and a
   linear probe on the Fashion-MNIST test split;
3. print a summary table, write ``demo_results.json`` and save a PNG of
   masked inputs and their reconstructions into the work directory.

The data is read from the config's ``data_root`` (``data/fashion-mnist``
under the working directory) or from ``--data-root``.  The script also runs
where the package is installed (``mim run mim_plugins run_demo``): the
default config is looked up next to this script, that is in the checkout's
``configs/`` or the installed ``mim_plugins/.mim/configs/``.

Example:
    python tools/run_demo.py  # MAE baseline config, 3 epochs of 20k images
    python tools/run_demo.py CONFIG --epochs 10 --train-samples 0
    mim run mim_plugins run_demo --data-root /data/fashion-mnist
"""
import argparse
import json
import os.path as osp
import sys
import time

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

import mim_plugins
from mim_plugins.datasets import apply_data_root
from mim_plugins.evaluation import build_feature_eval_loaders, score_model
from mim_plugins.utils import set_max_epochs
from mim_plugins.visualization import reconstruct, save_reconstruction_grid

DEFAULT_CONFIG = 'mae/mae_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py'
FMNIST_FILES = ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte',
                't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')


def config_roots() -> list:
    """Folders holding the configs: the checkout's ``configs/`` next to
    ``tools/``, or ``mim_plugins/.mim/configs`` of an installed package."""
    roots = [
        osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs'),
        osp.join(osp.dirname(mim_plugins.__file__), '.mim', 'configs')
    ]
    return [r for r in dict.fromkeys(roots) if osp.isdir(r)]


def find_config(config: str) -> str:
    """``config`` itself, or the same relative path under the configs."""
    if osp.isfile(config):
        return config
    rel = config[len('configs/'):] if config.startswith('configs/') \
        else config
    for root in config_roots():
        if osp.isfile(osp.join(root, rel)):
            return osp.join(root, rel)
    sys.exit(f'Config {config} not found in the working directory nor in '
             f'{config_roots()}.')


def check_fashion_mnist(cfg: Config) -> None:
    """Stop with a clear message when a split's IDX files are missing."""
    datasets = [cfg.train_dataloader.dataset]
    datasets += list(cfg.get('feature_eval_data', {}).values())
    for dataset in datasets:
        root = dataset.get('data_prefix') or dataset.get('data_root')
        missing = [
            f for f in FMNIST_FILES if not osp.isfile(osp.join(root, f))
        ]
        if missing:
            sys.exit(
                f'Fashion-MNIST not found: {osp.abspath(root)} lacks '
                f'{", ".join(missing)}.\nPut the four unpacked IDX files '
                f'({", ".join(FMNIST_FILES)}) there -- gunzip the .gz files '
                'of https://github.com/zalandoresearch/fashion-mnist or of '
                'the Debian package dataset-fashion-mnist '
                '(/usr/share/datasets/fashion-mnist) -- or pass '
                '--data-root DIR.')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'config',
        nargs='?',
        default=DEFAULT_CONFIG,
        help='pre-train config: a path, or a path under the configs '
        f'folder (default: {DEFAULT_CONFIG})')
    parser.add_argument(
        '--data-root',
        help='Fashion-MNIST folder with the four unpacked IDX files '
        "(default: the config's data_root, data/fashion-mnist)")
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument(
        '--epochs',
        type=int,
        default=3,
        help='pre-training epochs (the schedule is rescaled to them)')
    parser.add_argument(
        '--train-samples',
        type=int,
        default=20000,
        help='pre-train on the first N training images (0 = all 60000); '
        'the training split is shuffled, so classes stay balanced')
    parser.add_argument(
        '--eval-train-samples',
        type=int,
        default=10000,
        help='training images used as kNN bank and probe training set')
    parser.add_argument(
        '--eval-test-samples',
        type=int,
        default=10000,
        help='test images scored (10000 = the whole test split)')
    parser.add_argument('--knn-k', type=int, default=20)
    parser.add_argument(
        '--probe-epochs',
        type=int,
        default=100,
        help='linear-probe epochs on frozen features (0 skips the probe)')
    parser.add_argument(
        '--skip-train',
        action='store_true',
        help='evaluate the latest checkpoint of --work-dir without training')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help='config overrides')
    return parser.parse_args()


@torch.no_grad()
def masked_loss(model: torch.nn.Module, inputs: torch.Tensor) -> float:
    """The pre-training loss on held-out images, with a fixed mask seed."""
    was_training = model.training
    model.eval()
    torch.manual_seed(0)
    losses = model.loss(inputs, None)
    model.train(was_training)
    return float(sum(v for k, v in losses.items() if 'loss' in k))


def main() -> None:
    args = parse_args()
    torch.manual_seed(0)
    args.config = find_config(args.config)
    cfg = Config.fromfile(args.config)
    if args.train_samples:
        cfg.train_dataloader.dataset.indices = args.train_samples
    if args.data_root:
        cfg.data_root = args.data_root
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    apply_data_root(cfg)
    check_fashion_mnist(cfg)
    cfg.work_dir = args.work_dir
    cfg.launcher = 'none'
    # The schedule is rescaled in whole iterations, so a short epoch keeps
    # a warm-up of at least one iteration.
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    epoch_length = len(Runner.build_dataloader(cfg.train_dataloader))
    set_max_epochs(cfg, args.epochs, epoch_length=epoch_length)

    runner = Runner.from_cfg(cfg)
    t0 = time.time()
    if args.skip_train:
        runner.load_checkpoint(
            osp.join(args.work_dir, 'epoch_%d.pth' % cfg.train_cfg.max_epochs))
    else:
        runner.train()
    train_time = time.time() - t0
    ckpt = osp.join(args.work_dir, f'epoch_{cfg.train_cfg.max_epochs}.pth')
    model = runner.model

    init_default_scope('mmpretrain')
    loaders = build_feature_eval_loaders(cfg, args.eval_train_samples,
                                         args.eval_test_samples)
    runner.logger.info('Scoring frozen features of the pre-trained model ...')
    t1 = time.time()
    pretrained = score_model(model, loaders, args.knn_k, args.probe_epochs)

    runner.logger.info('Scoring the same model at random initialisation ...')
    torch.manual_seed(0)
    model_cfg = cfg.model.copy()
    # as the Runner does: the top-level preprocessor belongs to the model
    model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    random_model = runner.build_model(model_cfg)
    random_model.init_weights()
    random = score_model(random_model, loaders, args.knn_k, args.probe_epochs)
    eval_time = time.time() - t1

    # Masked inputs and their reconstructions (test images, fixed mask seed).
    batch = next(iter(loaders['test']))
    batch = model.data_preprocessor(batch, False)
    pretrained['test_loss'] = masked_loss(model, batch['inputs'])
    random['test_loss'] = masked_loss(random_model, batch['inputs'])
    inputs = batch['inputs'][:8]
    png = osp.join(args.work_dir, 'reconstruction.png')
    save_reconstruction_grid(
        reconstruct(model, inputs, seed=0),
        png,
        mean=cfg.data_preprocessor.mean,
        std=cfg.data_preprocessor.std,
        title=f'{cfg.model.type}: masked test images (ratio '
        f'{cfg.model.backbone.get("mask_ratio", 0.75)}) and reconstructions')

    results = dict(
        config=args.config,
        method=cfg.model.type,
        epochs=cfg.train_cfg.max_epochs,
        train_images=len(runner.train_dataloader.dataset),
        pretrain_seconds=round(train_time, 1),
        eval_seconds=round(eval_time, 1),
        eval_train_samples=args.eval_train_samples,
        eval_test_samples=args.eval_test_samples,
        pretrained=pretrained,
        random_init=random,
        checkpoint=ckpt,
        reconstruction_png=png)
    with open(osp.join(args.work_dir, 'demo_results.json'), 'w') as f:
        json.dump(results, f, indent=2)

    rows = [('method', results['method']), ('epochs', str(results['epochs'])),
            ('pre-train images', str(results['train_images'])),
            ('pre-train wall time', f'{train_time:.0f} s'),
            ('kNN top-1 (k=%d)' % args.knn_k,
             f"{pretrained['knn_top1']:.2f} %"),
            ('random-init kNN top-1', f"{random['knn_top1']:.2f} %")]
    if 'linear_top1' in pretrained:
        rows += [('linear-probe top-1', f"{pretrained['linear_top1']:.2f} %"),
                 ('random-init probe top-1', f"{random['linear_top1']:.2f} %")]
    rows += [('test masked-patch loss', f"{pretrained['test_loss']:.4f}"),
             ('random-init test loss', f"{random['test_loss']:.4f}"),
             ('checkpoint', ckpt), ('reconstructions', png)]
    width = max(len(k) for k, _ in rows)
    print('\n' + '=' * 60)
    print(f'Fashion-MNIST demo (eval: {args.eval_train_samples} train / '
          f'{args.eval_test_samples} test images, frozen features)')
    print('-' * 60)
    for k, v in rows:
        print(f'{k:<{width}}  {v}')
    print('=' * 60)


if __name__ == '__main__':
    main()
