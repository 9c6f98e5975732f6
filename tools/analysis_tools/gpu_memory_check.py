# Copyright (c) OpenMMLab. All rights reserved.
"""Check the memory planner on a GPU: real training steps beside the
prediction.

For every config, the planner (``benchmark_efficiency.py --fit-memory``)
measures the config on CPU and predicts the largest per-device batch that
fits this GPU; then a few real training iterations run on CUDA at that
batch and at twice it, and ``torch.cuda.max_memory_allocated`` /
``max_memory_reserved`` are printed beside the predicted peak (an
out-of-memory run is reported as such). The JSON it writes is what
``benchmark_efficiency.py --calibration FILE`` takes to replace its margin by
the measured ratio of ``max_memory_reserved`` to the prediction and the
CUDA context.

Example:
    python tools/analysis_tools/gpu_memory_check.py \
        configs/mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py --amp \
        --out work_dirs/gpu_memory_check/mae_amp.json
"""
import argparse
import gc
import json
import os
import os.path as osp
import sys
from typing import Dict, Optional

import torch

NO_CUDA = ('gpu_memory_check.py measures training memory on a CUDA device, '
           'and torch {version} sees none (torch.cuda.is_available() is '
           'False). Run it on a machine with a GPU; on CPU, '
           'benchmark_efficiency.py --fit-memory predicts the memory '
           'without one.')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='+', help='configs to check')
    parser.add_argument(
        '--batch',
        type=int,
        default=None,
        help='per-device batch to run (and twice it); default: the '
        'largest batch the planner predicts for this GPU')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='train with AmpOptimWrapper (fp16 autocast, dynamic loss '
        'scale), as tools/train.py --amp; default: fp32')
    parser.add_argument(
        '--iters', type=int, default=3, help='training iterations per run')
    parser.add_argument(
        '--fit-batches',
        type=int,
        nargs=2,
        default=[2, 4],
        metavar=('SMALL', 'LARGE'),
        help='the two batches the planner measures on CPU')
    parser.add_argument(
        '--out',
        default='work_dirs/gpu_memory_check/gpu_memory_check.json',
        help='JSON file to write')
    args = parser.parse_args(argv)
    if args.batch is not None and args.batch < 1:
        parser.error('--batch must be >= 1')
    if args.iters < 1:
        parser.error('--iters must be >= 1')
    return args


def cuda_config(path: str, amp: bool):
    """The config as it trains on CUDA: ``AmpOptimWrapper`` with ``--amp``
    (as ``tools/train.py --amp`` sets it), the fp32 ``OptimWrapper``
    without."""
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    wrapper = cfg.optim_wrapper
    if amp and wrapper.get('type', 'OptimWrapper') == 'OptimWrapper':
        wrapper.type = 'AmpOptimWrapper'
        wrapper.setdefault('loss_scale', 'dynamic')
    elif not amp and wrapper.get('type') == 'AmpOptimWrapper':
        wrapper.type = 'OptimWrapper'
        wrapper.pop('loss_scale', None)
        wrapper.pop('dtype', None)
    return cfg


def run_on_cuda(cfg, batch: int, iters: int) -> Optional[Dict]:
    """Peak CUDA memory of ``iters`` training iterations at ``batch`` after
    one warm-up iteration; None when CUDA runs out of memory."""
    from mmengine.registry import DefaultScope

    from mim_plugins.benchmarks import (build_model_and_optim, image_shape,
                                        make_batch)
    model = optim_wrapper = data = None
    try:
        torch.manual_seed(0)
        model, optim_wrapper = build_model_and_optim(cfg, 'cuda')
        data = make_batch(batch, image_shape(cfg))
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            model.train_step(data, optim_wrapper)  # optimizer state
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            for _ in range(iters):
                model.train_step(data, optim_wrapper)
        torch.cuda.synchronize()
        result = dict(
            max_allocated=float(torch.cuda.max_memory_allocated()),
            max_reserved=float(torch.cuda.max_memory_reserved()))
    except torch.cuda.OutOfMemoryError:
        result = None
    del model, optim_wrapper, data
    gc.collect()
    torch.cuda.empty_cache()
    return result


def cuda_context_bytes() -> float:
    """Device memory this process holds that the caching allocator does not
    (CUDA context, kernel modules, cuBLAS handles)."""
    free, total = torch.cuda.mem_get_info()
    return float(total - free - torch.cuda.memory_reserved())


def check_config(path: str, args: argparse.Namespace,
                 total_gib: float) -> list:
    """The planner's prediction and the measured peaks of one config."""
    from mim_plugins.benchmarks import (MemoryBudgetError, calibration_run,
                                        measure_memory_lines, plan_memory)
    precision = 'amp' if args.amp else 'fp32'
    lines = measure_memory_lines(path, precision, batches=args.fit_batches)
    batch = args.batch
    if batch is None:
        try:
            batch = plan_memory(lines, total_gib)['max_batch']
        except MemoryBudgetError as err:
            print(f'WARNING: {err}', file=sys.stderr)
            return []
    cfg = cuda_config(path, args.amp)
    runs = []
    for b in (batch, 2 * batch):
        measured = run_on_cuda(cfg, b, args.iters) or {}
        run = calibration_run(lines['name'], precision, lines['attention'], b,
                              lines['step'].peak(b),
                              measured.get('max_allocated'),
                              measured.get('max_reserved'))
        runs.append(run)
        if run['oom']:
            print(f"{run['name']} {precision} batch {b}: predicted "
                  f"{run['predicted_peak_gib']:.2f} GiB; out of memory")
        else:
            print(f"{run['name']} {precision} batch {b}: predicted "
                  f"{run['predicted_peak_gib']:.2f} GiB, max_allocated "
                  f"{run['max_allocated_gib']:.2f} GiB (x"
                  f"{run['allocated_ratio']:.3f}), max_reserved "
                  f"{run['max_reserved_gib']:.2f} GiB (x"
                  f"{run['reserved_ratio']:.3f})")
    return runs


def make_report(runs: list, device: str, total_gib: float,
                context_bytes: float, iters: int) -> Dict:
    """The JSON report that ``benchmark_efficiency.py --calibration``
    reads (see ``mim_plugins.benchmarks.load_calibration``)."""
    from mim_plugins.benchmarks import CALIBRATION_FORMAT, GIB
    return dict(
        format=CALIBRATION_FORMAT,
        device=device,
        total_gib=total_gib,
        torch=torch.__version__,
        cuda=torch.version.cuda,
        context_gib=context_bytes / GIB,
        iters=iters,
        runs=runs)


def write_report(report: Dict, out: str) -> None:
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
        json.dump(report, f, indent=2)


def main(argv=None) -> None:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit(NO_CUDA.format(version=torch.__version__))
    import logging

    from mmengine.logging import MMLogger

    import mim_plugins  # noqa: F401
    from mim_plugins.benchmarks import GIB
    MMLogger.get_instance('mmengine').setLevel(logging.WARNING)
    total_gib = torch.cuda.get_device_properties(0).total_memory / GIB
    runs, context = [], 0.0
    for path in args.configs:
        runs += check_config(path, args, total_gib)
        context = max(context, cuda_context_bytes())
    report = make_report(runs, torch.cuda.get_device_name(), total_gib,
                         context, args.iters)
    write_report(report, args.out)
    print(f'CUDA context {context / GIB:.2f} GiB; wrote {args.out}')


if __name__ == '__main__':
    main()
