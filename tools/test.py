# Copyright (c) OpenMMLab. All rights reserved.
"""Test (evaluate) a checkpoint with a config's test loop (mmpretrain flags).

Pre-training configs have no test loop: evaluate their backbones with a
benchmark config (``configs/*/benchmarks/``) or ``tools/run_demo.py``'s
frozen-feature evaluation.
"""
import argparse
import os
import os.path as osp
from copy import deepcopy

import mmengine
from mmengine.config import Config, ConfigDict, DictAction
from mmengine.evaluator import DumpResults
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import mim_plugins  # noqa: F401  (registers the plugin's modules)
from mim_plugins.datasets import apply_data_root
from mim_plugins.utils import setup_cpu_distributed


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir', help='the directory to save the evaluation metrics')
    parser.add_argument('--out', help='the file to output results')
    parser.add_argument(
        '--out-item',
        choices=['metrics', 'pred'],
        help='output metrics or predictions (default) into --out')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs')
    parser.add_argument(
        '--amp', action='store_true', help='mixed-precision test')
    parser.add_argument(
        '--show-dir', help='directory to save visualized predictions')
    parser.add_argument(
        '--show', action='store_true', help='display predictions in a window')
    parser.add_argument(
        '--interval', type=int, default=1, help='visualize every N samples')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='display time (s)')
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='disable pin_memory in the dataloaders')
    parser.add_argument(
        '--tta',
        action='store_true',
        help='test-time augmentation (the config\'s tta_pipeline/tta_model, '
        'or flip TTA averaging the classification scores)')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Merge command-line arguments into the config."""
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint

    if args.amp:
        cfg.test_cfg.fp16 = True

    if args.show or args.show_dir:
        if 'visualization' not in cfg.default_hooks:
            raise ValueError('--show/--show-dir need a VisualizationHook in '
                             'default_hooks.visualization')
        vis = cfg.default_hooks.visualization
        vis.enable = True
        vis.show = args.show
        vis.wait_time = args.wait_time
        vis.out_dir = args.show_dir
        vis.interval = args.interval

    if args.tta:
        if 'tta_model' not in cfg:
            cfg.tta_model = dict(type='mmpretrain.AverageClsScoreTTA')
        if 'tta_pipeline' not in cfg:
            test_pipeline = cfg.test_dataloader.dataset.pipeline
            cfg.tta_pipeline = deepcopy(test_pipeline)
            flip_tta = dict(
                type='TestTimeAug',
                transforms=[[
                    dict(type='RandomFlip', prob=1.),
                    dict(type='RandomFlip', prob=0.)
                ], [test_pipeline[-1]]])
            cfg.tta_pipeline[-1] = flip_tta
        cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline

    if cfg.get('test_dataloader', None) is not None:
        loader = ConfigDict(
            pin_memory=True,
            persistent_workers=True,
            collate_fn=dict(type='default_collate'))
        loader.update(cfg.test_dataloader)
        if args.no_pin_memory:
            loader['pin_memory'] = False
        cfg.test_dataloader = loader

    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    # `data_root=DIR` moves every Fashion-MNIST split (not only the key).
    apply_data_root(cfg)
    # torch refuses persistent workers without worker processes.
    if cfg.get('test_dataloader') and \
            cfg.test_dataloader.get('num_workers', 0) == 0:
        cfg.test_dataloader['persistent_workers'] = False
    return setup_cpu_distributed(cfg)


def main() -> None:
    args = parse_args()
    if args.out is None and args.out_item is not None:
        raise ValueError('--out-item needs --out (the output file path)')

    cfg = Config.fromfile(args.config)
    if cfg.get('test_dataloader') is None or cfg.get('test_cfg') is None:
        raise ValueError(
            f'{args.config} has no test_dataloader/test_cfg (a pre-training '
            'config?). Evaluate pre-trained backbones with a benchmark config '
            'under configs/<algo>/benchmarks/ or tools/run_demo.py.')
    cfg = merge_args(cfg, args)

    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg \
        else RUNNERS.build(cfg)
    if args.out and args.out_item in ['pred', None]:
        runner.test_evaluator.metrics.append(
            DumpResults(out_file_path=args.out))

    metrics = runner.test()
    if args.out and args.out_item == 'metrics':
        mmengine.dump(metrics, args.out)


if __name__ == '__main__':
    main()
