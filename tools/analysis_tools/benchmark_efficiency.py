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
        configs/prmim/prmim_vit-base-p16_8xb512-amp-coslr-400e_in1k.py \
        --baseline configs/mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py
"""
import argparse
import contextlib
import json
import os
import os.path as osp
import platform
from typing import Dict, List

import torch

import mim_plugins  # noqa: F401
from mim_plugins.utils.efficiency import measure_config, ratio


def attention_backend(name: str):
    """Context choosing the SDPA kernel of every attention layer."""
    if name == 'default':
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel
    return sdpa_kernel(SDPBackend.MATH)


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
    parser.add_argument(
        '--attention',
        default='default',
        choices=['default', 'math'],
        help='`math` forces the unfused SDPA kernel, which keeps every '
        'attention map for backward as the original MAE/timm attention '
        'does; `default` lets torch pick (fused on CPU/GPU)')
    return parser.parse_args()


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
        f"{meta['torch']}, fp32, {meta.get('attention', 'default')} "
        f"attention; FLOPs and time at batch "
        f"{meta['batch_size']}; memory measured at {meta['batch_size']} and "
        f"{2 * meta['batch_size']} and reported at the batch shown.",
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
    kwargs = dict(
        batch_size=args.batch_size,
        mem_batch=args.mem_batch,
        img_size=args.img_size,
        device=args.device,
        iters=args.iters,
        seed=args.seed)
    with attention_backend(args.attention):
        baseline = measure_config(args.baseline, **kwargs)
        records = [baseline
                   ] + [measure_config(c, **kwargs) for c in args.configs]
    add_ratios(records, baseline)
    meta = dict(
        device=args.device,
        machine=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(),
        torch=torch.__version__,
        batch_size=args.batch_size,
        img_size=args.img_size,
        baseline=args.baseline,
        attention=args.attention,
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
