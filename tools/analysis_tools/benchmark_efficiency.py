# Copyright (c) OpenMMLab. All rights reserved.
"""Training cost of MIM configs against a baseline, measured in one run.

For every config: parameters (total / encoder), training FLOPs per image
(``FlopCounterMode`` over one whole ``train_step``: forward, backward and
optimizer step), peak training memory (live tensor storages on CPU,
``max_memory_allocated`` on CUDA) at two batch sizes and extrapolated to the
config's own per-device batch (``--mem-batch``), and step time; each as a
ratio to ``--baseline``.  Writes ``efficiency.json``, ``efficiency.md`` and
``efficiency.png`` into ``--out``.

``--fit-memory 12 24 40 80`` adds the memory planner: for every config,
precision (fp32, AMP) and device memory (GiB), the largest per-device batch
whose predicted peak training memory fits, and the batch and
``optim_wrapper.accumulative_counts`` that reach the config's own batch;
``--fit-only`` skips the FLOPs/time measurement. The planner predicts CUDA
memory from the CPU measurement: the attention path (``--attention sdpa
eager``; by default the one each config's modules run, printed), CUDA's
multi-tensor AdamW temporaries, DDP's gradient buckets (``--ddp``) and a
margin, 1 GiB + 10 % or measured on a GPU by ``gpu_memory_check.py``
(``--calibration FILE``).

Example:
    python tools/analysis_tools/benchmark_efficiency.py \
        configs/prmim/prmim_vit-base-p16_8xb512-amp-coslr-400e_in1k.py \
        --baseline configs/mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py
    # the largest batch on 12/24/40/80 GiB devices, fp32 and AMP
    python tools/analysis_tools/benchmark_efficiency.py \
        configs/prmim/prmim_vit-base-p16_8xb512-amp-coslr-400e_in1k.py \
        --baseline configs/mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py \
        --fit-memory 12 24 40 80 --fit-only --attention sdpa eager
"""
import argparse
import contextlib
import json
import os
import os.path as osp
import platform
import sys
from typing import Dict, List, Optional

import torch

import mim_plugins  # noqa: F401
from mim_plugins.benchmarks import (GIB, CalibrationError, MemoryBudgetError,
                                    load_calibration, measure_config,
                                    measure_memory_lines, min_budget_gib,
                                    plan_memory, ratio)


def attention_backend(name: str):
    """Context running every attention layer's SDPA call with torch's
    unfused math kernel (``'math'``); any other name leaves torch's choice
    (fused kernels)."""
    if name != 'math':
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
        nargs='+',
        default=None,
        choices=['sdpa', 'eager', 'math'],
        help='attention path(s) to plan: `sdpa` (fused kernels, no '
        'attention probabilities kept), `eager` (softmax(q k^T) v as the '
        'original MAE/timm code and torch < 2 compute it: probabilities kept '
        'per layer, modelled on the measured step), or both; default: what '
        'each config\'s modules run on this torch (printed). `math` runs '
        'torch\'s unfused SDPA kernel for the whole measurement, cost table '
        'included')
    plan = parser.add_argument_group(
        'memory planner', 'the largest per-device batch that fits a device')
    plan.add_argument(
        '--fit-memory',
        type=float,
        nargs='+',
        metavar='GIB',
        help='device memory sizes (GiB) to plan the batch for')
    plan.add_argument(
        '--fit-precision',
        nargs='+',
        default=['fp32', 'amp'],
        choices=['fp32', 'amp'],
        help='precisions to plan: fp32, and amp (the forward measured under '
        'CPU bf16 autocast with CUDA\'s float32 op policy)')
    plan.add_argument(
        '--fit-batches',
        type=int,
        nargs=2,
        default=[2, 4],
        metavar=('SMALL', 'LARGE'),
        help='the two batches measured for the per-operator fit')
    plan.add_argument(
        '--margin-gib',
        type=float,
        default=1.0,
        help='GiB kept for what the CPU measurement cannot see and does not '
        'grow with the batch: CUDA context, cuBLAS/attention workspaces')
    plan.add_argument(
        '--margin-frac',
        type=float,
        default=0.1,
        help='fraction of the device kept for the CUDA caching allocator\'s '
        'rounding and fragmentation')
    plan.add_argument(
        '--ddp',
        action='store_true',
        help='plan for multi-GPU DistributedDataParallel training: its '
        'gradient buckets hold one more copy of the gradients (none when the '
        'config sets model_wrapper_cfg.gradient_as_bucket_view=True)')
    plan.add_argument(
        '--calibration',
        nargs='+',
        metavar='FILE',
        help='JSON of tools/analysis_tools/gpu_memory_check.py: its measured '
        'ratio of max_memory_reserved to the prediction, and the CUDA '
        'context, replace --margin-gib and --margin-frac')
    plan.add_argument(
        '--fit-only',
        action='store_true',
        help='only plan memory (skip FLOPs, time and the efficiency plot)')
    args = parser.parse_args()
    if args.fit_only and not args.fit_memory:
        parser.error('--fit-only needs --fit-memory')
    if not 0 <= args.margin_frac < 1 or args.margin_gib < 0:
        parser.error('--margin-frac must be in [0, 1) and --margin-gib >= 0')
    if args.attention and 'math' in args.attention and \
            len(args.attention) > 1:
        parser.error('--attention math runs the math kernel; it cannot be '
                     'combined with sdpa or eager')
    if args.calibration and not args.fit_memory:
        parser.error('--calibration needs --fit-memory')
    if args.fit_memory and min(args.fit_memory) <= 0:
        parser.error('--fit-memory sizes must be positive GiB')
    small, large = args.fit_batches
    if not 0 < small < large:
        parser.error('--fit-batches needs 0 < SMALL < LARGE')
    return args


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


def attention_paths(requested) -> List:
    """The attention paths to plan: those asked for, else None (the path
    each config runs, as measured)."""
    if not requested or requested == ['math']:
        return [None]
    return list(requested)


def attention_note(lines: Dict, requested) -> str:
    """One line saying what attention a config runs and what is planned."""
    calls = lines['attention_calls']
    note = (f"{lines['name']} ({lines['precision']}): runs "
            f"{lines['attention']} attention on torch {torch.__version__} "
            f"({calls['sdpa']} fused scaled_dot_product_attention and "
            f"{calls['eager']} eager softmax calls per step)")
    if requested == ['math']:
        return note + '; torch\'s math kernel forced (--attention math)'
    if requested and lines['attention'] != 'sdpa':
        note += ('; no fused call to model as eager: sdpa and eager are '
                 'the same')
    paths = requested or [lines['attention']]
    return note + '; planned: ' + ', '.join(paths)


def load_calibrations(args: argparse.Namespace, paths: List[str]) -> Dict:
    """The measured margins of ``--calibration`` for every config and
    precision, or {} without it; exits with the reason if unusable."""
    if not args.calibration:
        return {}
    wanted = [(osp.splitext(osp.basename(p))[0], precision)
              for p in dict.fromkeys(paths)
              for precision in args.fit_precision]
    try:
        return load_calibration(args.calibration, wanted)
    except CalibrationError as err:
        raise SystemExit(f'error: {err}')


def plan_configs(paths: List[str],
                 args: argparse.Namespace,
                 calibrations: Optional[Dict] = None) -> Dict:
    """Memory plan of every config, precision, attention path and device
    memory; ``calibrations`` from :func:`load_calibrations`."""
    calibrations = calibrations or {}
    rows = []
    for path in dict.fromkeys(paths):  # the baseline may be listed twice
        for precision in args.fit_precision:
            lines = measure_memory_lines(
                path,
                precision,
                batches=args.fit_batches,
                img_size=args.img_size,
                seed=args.seed)
            print(attention_note(lines, args.attention), file=sys.stderr)
            calibration = calibrations.get((lines['name'], precision))
            buckets = lines['ddp_bucket_bytes'] * args.ddp
            for attention in attention_paths(args.attention):
                step = lines['step'] if attention is None else \
                    lines['paths'][attention]['step']
                label = attention or ('math' if args.attention == ['math'] else
                                      lines['attention'])
                row = dict(
                    config=path,
                    name=lines['name'],
                    precision=precision,
                    attention=label,
                    attention_run=lines['attention'],
                    attention_calls=lines['attention_calls'],
                    config_batch=lines['config_batch'],
                    config_accumulative_counts=lines['accumulative_counts'],
                    resident_gib=lines['resident_bytes'] / GIB,
                    peak_gib_measured={
                        b: v / GIB
                        for b, v in lines['peak_bytes_measured'].items()
                    },
                    # predicted peak of one plain step at the config's batch
                    peak_gib_at_config_batch=step.peak(lines['config_batch']) /
                    GIB,
                    grad_gib=lines['grad_bytes'] / GIB,
                    ddp_bucket_gib=buckets / GIB,
                    calibration=calibration,
                    min_gib=min_budget_gib(
                        step.peak(1) + buckets, args.margin_gib,
                        args.margin_frac, calibration),
                    plans=[])
                for budget in args.fit_memory:
                    try:
                        plan = plan_memory(lines, budget, args.margin_gib,
                                           args.margin_frac, args.ddp,
                                           attention, calibration)
                        plan['cfg_options'] = (
                            f"train_dataloader.batch_size={plan['batch']} "
                            'optim_wrapper.accumulative_counts='
                            f"{plan['accumulative_counts']}")
                    except MemoryBudgetError as err:
                        print(f'WARNING: {err}', file=sys.stderr)
                        plan = dict(budget_gib=budget, error=str(err))
                    row['plans'].append(plan)
                rows.append(row)
    return dict(
        budgets_gib=list(args.fit_memory),
        margin_gib=args.margin_gib,
        margin_frac=args.margin_frac,
        calibration=args.calibration,
        ddp=args.ddp,
        attention=args.attention,
        batches=list(args.fit_batches),
        rows=rows)


def plan_cell(plan: Dict) -> str:
    """``max`` or ``max (batch x counts)`` or the minimum memory."""
    if 'error' in plan:
        return 'does not fit'
    cell = str(plan['max_batch'])
    if plan['accumulative_counts'] > 1:
        cell += f" ({plan['batch']} x {plan['accumulative_counts']})"
    return cell


def plan_markdown(plan: Dict, meta: Dict) -> str:
    budgets = plan['budgets_gib']
    if plan['calibration']:
        margin = ('the margin measured on a GPU (--calibration '
                  f"{' '.join(plan['calibration'])}: "
                  '`max_memory_reserved` / predicted peak, and the CUDA '
                  'context)')
    else:
        margin = (f"margin {plan['margin_gib']:g} GiB + "
                  f"{plan['margin_frac']:.0%} of the device")
    attention = ('the attention each config runs on this torch'
                 if not plan['attention'] else ', '.join(plan['attention']))
    lines = [
        f"Memory plan (measured on CPU, torch {meta['torch']}): the "
        'largest per-device batch whose predicted peak training memory '
        f"fits; in brackets, when the config's batch does not fit, "
        '`train_dataloader.batch_size` x `optim_wrapper.accumulative_counts`'
        ' reaching it. Peak memory measured per operator at batches '
        f"{plan['batches'][0]} and {plan['batches'][1]} and extrapolated; "
        f'attention: {attention} (sdpa: fused kernels; eager: attention '
        'probabilities kept per layer); CUDA multi-tensor AdamW '
        f'temporaries counted; {margin}' +
        ('; multi-GPU: DDP gradient buckets counted.'
         if plan['ddp'] else '; one process (no DDP).'),
        '',
        '| config | precision | attention | batch | min GiB | ' +
        ' | '.join(f'{b:g} GiB' for b in budgets) + ' |',
        '| --- | --- | --- | --- | --- | ' +
        ' | '.join('---' for _ in budgets) + ' |',
    ]
    for row in plan['rows']:
        cells = [plan_cell(p) for p in row['plans']]
        batch = str(row['config_batch'])
        if row['config_accumulative_counts'] > 1:
            batch += f" x {row['config_accumulative_counts']}"
        lines.append(f"| {row['name']} | {row['precision']} | "
                     f"{row['attention']} | {batch} | "
                     f"{row['min_gib']:.1f} | " + ' | '.join(cells) + ' |')
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
    configs = [args.baseline] + list(args.configs)
    # a bad calibration file fails before anything is measured
    calibrations = load_calibrations(args, configs)
    records, plan = [], None
    kernel = 'math' if args.attention == ['math'] else 'default'
    with attention_backend(kernel):
        if not args.fit_only:
            records = [measure_config(c, **kwargs) for c in configs]
        if args.fit_memory:
            plan = plan_configs(configs, args, calibrations)
    meta = dict(
        device=args.device,
        machine=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(),
        torch=torch.__version__,
        batch_size=args.batch_size,
        img_size=args.img_size,
        baseline=args.baseline,
        attention=kernel,
        device_name=torch.cuda.get_device_name()
        if args.device == 'cuda' else platform.platform())
    report, table = dict(meta=meta), ''
    if records:
        add_ratios(records, records[0])
        report['records'] = records
        table = to_markdown(records, meta)
        plot(records, osp.join(args.out, 'efficiency.png'))
    if plan is not None:
        report['memory_plan'] = plan
        table += ('\n' if table else '') + plan_markdown(plan, meta)
    with open(osp.join(args.out, 'efficiency.json'), 'w') as f:
        json.dump(report, f, indent=2)
    with open(osp.join(args.out, 'efficiency.md'), 'w') as f:
        f.write(table)
    print(table)


if __name__ == '__main__':
    main()
