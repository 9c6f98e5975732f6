# Copyright (c) OpenMMLab. All rights reserved.
"""Training cost of MIM configs against a baseline, measured in one run.

For every config: parameters (total / encoder), training FLOPs per image
(``FlopCounterMode`` over one whole ``train_step``: forward, backward and
optimizer step), peak training memory (live tensor storages on CPU,
``max_memory_allocated`` on CUDA) at two batch sizes and extrapolated to the
config's own per-device batch (``--mem-batch``), and step time; each as a
ratio to ``--baseline``.  Writes ``efficiency.json``, ``efficiency.md`` and
``efficiency.png`` into ``--out``.

Example:
    python tools/analysis_tools/benchmark_efficiency.py \
        configs/prmim/prmim_vit-base-p16_8xb512-amp-coslr-300e_in1k.py \
        --baseline configs/mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py
"""
import argparse
import json
import os
import os.path as osp
import platform
from typing import Dict, List, Optional

import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

import mim_plugins  # noqa: F401
from mim_plugins.utils.efficiency import (extrapolate_memory, measure_step,
                                          ratio)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='+', help='configs to measure')
    parser.add_argument(
        '--baseline', required=True, help='baseline config (e.g. MAE)')
    parser.add_argument(
        '--batch-size',
        type=int,
        default=8,
        help='batch of the FLOPs/time measurement; memory is also measured '
        'at twice this batch for the extrapolation')
    parser.add_argument(
        '--mem-batch',
        type=int,
        default=None,
        help='batch for the memory comparison (default: each config\'s own '
        'per-device batch)')
    parser.add_argument(
        '--img-size',
        type=int,
        default=None,
        help='image size (default: the backbone\'s img_size, else 224)')
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--iters', type=int, default=3, help='timed steps')
    parser.add_argument('--out', default='work_dirs/efficiency')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args()


def load_config(path: str, device: str) -> Config:
    cfg = Config.fromfile(path)
    wrapper = cfg.optim_wrapper
    if device == 'cpu' and wrapper.get('type') == 'AmpOptimWrapper':
        # fp32 on CPU: the comparison must not depend on bf16 kernels
        wrapper.type = 'OptimWrapper'
        wrapper.pop('loss_scale', None)
        wrapper.pop('dtype', None)
    return cfg


def build(cfg: Config, device: str):
    from mmpretrain.registry import MODELS
    model_cfg = cfg.model.copy()
    model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(model_cfg)
        model.init_weights()
        model = model.to(device).train()
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    return model, optim_wrapper


def image_shape(cfg: Config, img_size: Optional[int]) -> tuple:
    channels = len(cfg.get('data_preprocessor', {}).get('mean', [0, 0, 0]))
    size = img_size or cfg.model.get('backbone', {}).get('img_size', 224)
    return channels, size, size


def make_batch(batch_size: int, shape: tuple, seed: int) -> dict:
    from mmpretrain.structures import DataSample
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(
        0, 256, (batch_size, *shape), generator=gen, dtype=torch.uint8)
    return dict(
        inputs=images, data_samples=[DataSample() for _ in range(batch_size)])


def per_device_batch(cfg: Config) -> int:
    return int(cfg.get('train_dataloader', {}).get('batch_size', 8))


def measure_config(path: str, args: argparse.Namespace) -> Dict:
    cfg = load_config(path, args.device)
    shape = image_shape(cfg, args.img_size)
    mem_batch = args.mem_batch or per_device_batch(cfg)
    record = dict(
        config=path,
        name=osp.splitext(osp.basename(path))[0],
        algorithm=cfg.model.type,
        image_shape=list(shape),
        batch_size=args.batch_size,
        mem_batch=mem_batch)
    results = {}
    for batch_size in (args.batch_size, 2 * args.batch_size):
        torch.manual_seed(args.seed)
        model, optim_wrapper = build(cfg, args.device)
        data = make_batch(batch_size, shape, args.seed)

        def step():
            with DefaultScope.overwrite_default_scope('mmpretrain'):
                model.train_step(data, optim_wrapper)

        results[batch_size] = measure_step(
            step, model, optim_wrapper, device=args.device, iters=args.iters)
        if batch_size == args.batch_size:
            record['params_total'] = sum(p.numel() for p in model.parameters())
            backbone = getattr(model, 'backbone', None)
            record['params_encoder'] = sum(
                p.numel()
                for p in backbone.parameters()) if backbone else None
        del model, optim_wrapper
    small, large = results[args.batch_size], results[2 * args.batch_size]
    record['flops_per_image'] = small['flops'] / args.batch_size
    record['step_time'] = small['step_time']
    record['images_per_s'] = args.batch_size / small['step_time']
    record['resident_bytes'] = small['resident_bytes']
    record['peak_bytes_measured'] = {
        str(args.batch_size): small['peak_bytes'],
        str(2 * args.batch_size): large['peak_bytes']
    }
    record['peak_bytes_at_mem_batch'] = extrapolate_memory(
        small['peak_bytes'], large['peak_bytes'], args.batch_size,
        2 * args.batch_size, mem_batch)
    record['peak_bytes_at_mem_batch_source'] = 'extrapolated' if mem_batch \
        not in (args.batch_size, 2 * args.batch_size) else 'measured'
    return record


def add_ratios(records: List[Dict], baseline: Dict) -> None:
    for rec in records:
        rec['ratios'] = dict(
            flops=ratio(rec['flops_per_image'], baseline['flops_per_image']),
            memory=ratio(rec['peak_bytes_at_mem_batch'],
                         baseline['peak_bytes_at_mem_batch']),
            step_time=ratio(rec['step_time'], baseline['step_time']))


def to_markdown(records: List[Dict], meta: Dict) -> str:
    lines = [
        f"Device: {meta['device']} ({meta['machine']}), torch "
        f"{meta['torch']}, batch {meta['batch_size']} (memory also at "
        f"{2 * meta['batch_size']} and at each config's per-device batch).",
        '',
        '| config | params (M) total / encoder | train GFLOPs / img | '
        'peak mem (GiB) @ batch | step time (s) | img/s | FLOPs ratio | '
        'memory ratio | time ratio |',
        '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ]
    gib = 1024**3
    for rec in records:
        enc = rec['params_encoder']
        enc = f'{enc / 1e6:.2f}' if enc is not None else '-'
        r = rec['ratios']
        lines.append(
            f"| {rec['name']} | {rec['params_total'] / 1e6:.2f} / {enc} | "
            f"{rec['flops_per_image'] / 1e9:.3f} | "
            f"{rec['peak_bytes_at_mem_batch'] / gib:.2f} @ {rec['mem_batch']}"
            f" ({rec['peak_bytes_at_mem_batch_source']}) | "
            f"{rec['step_time']:.3f} | {rec['images_per_s']:.1f} | "
            f"{r['flops']:.3f} | {r['memory']:.3f} | {r['step_time']:.3f} |")
    return '\n'.join(lines) + '\n'


def plot(records: List[Dict], out_file: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    keys = [('flops', 'train FLOPs'), ('memory', 'peak memory'),
            ('step_time', 'step time')]
    width = 0.8 / len(keys)
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(records)), 3.5))
    for i, (key, label) in enumerate(keys):
        ax.bar([j + i * width for j in range(len(records))],
               [rec['ratios'][key] for rec in records],
               width=width,
               label=label)
    ax.axhline(1.0, color='gray', lw=0.8, ls='--')
    ax.set_xticks([j + width for j in range(len(records))])
    ax.set_xticklabels([rec['name'] for rec in records],
                       rotation=20,
                       ha='right',
                       fontsize=7)
    ax.set_ylabel('ratio to baseline')
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_file, dpi=120)
    plt.close(fig)


def main() -> None:
    args = parse_args()
    import logging

    from mmengine.logging import MMLogger
    MMLogger.get_instance('mmengine').setLevel(logging.WARNING)
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda requested but CUDA is not available')
    os.makedirs(args.out, exist_ok=True)
    baseline = measure_config(args.baseline, args)
    records = [baseline] + [measure_config(c, args) for c in args.configs]
    add_ratios(records, baseline)
    meta = dict(
        device=args.device,
        machine=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(),
        torch=torch.__version__,
        batch_size=args.batch_size,
        img_size=args.img_size,
        baseline=args.baseline,
        device_name=torch.cuda.get_device_name()
        if args.device == 'cuda' else platform.platform())
    with open(osp.join(args.out, 'efficiency.json'), 'w') as f:
        json.dump(dict(meta=meta, records=records), f, indent=2)
    table = to_markdown(records, meta)
    with open(osp.join(args.out, 'efficiency.md'), 'w') as f:
        f.write(table)
    plot(records, osp.join(args.out, 'efficiency.png'))
    print(table)


if __name__ == '__main__':
    main()
