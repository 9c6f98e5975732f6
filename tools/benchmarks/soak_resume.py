# Copyright (c) OpenMMLab. All rights reserved.
"""Long-run soak: resume every N iterations, memory and loss curves.

For each method's Fashion-MNIST pre-training config (or ``--configs``) the
script trains ``--iters`` iterations twice with ``tools/train.py`` under an
``IterBasedTrainLoop``:

- *uninterrupted*: one process;
- *resumed*: stopped after every ``--resume-every`` iterations (right after
  the checkpoint of that iteration) and resumed from that checkpoint
  (``--resume``) in a fresh process -- a real restart.

A small hook (:class:`SoakRecorderHook`) records every iteration's losses
and, every ``--resume-every`` iterations, the process's resident memory
(current ``VmRSS`` and peak ``ru_maxrss``). The script prints and writes a
table per method into ``--out`` (``soak_resume.md``, ``soak_resume.json``):
RSS at each checkpoint of both runs, the growth of the uninterrupted run's
RSS from its first to its last checkpoint, the largest absolute loss
difference between the runs and whether the curves are identical.

Exact curves need ``num_workers=0`` (the default here): dataloader workers
restart from their initial seeds on resume (see
:class:`mim_plugins.engine.hooks.RandomStateHook`).

Example:
    python tools/benchmarks/soak_resume.py --iters 2000 --resume-every 500 \\
        --batch-size 8
    python tools/benchmarks/soak_resume.py --methods mae --quick --jobs 2
"""
import argparse
import copy
import json
import os
import os.path as osp
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional

from mmengine.config import Config
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ALL_METHODS = ['mae', 'bim', 'prmim', 'mixmim', 'localmim']
LOSSES_FILE = 'soak_losses.jsonl'
MEMORY_FILE = 'soak_memory.jsonl'


def method_config(method: str) -> str:
    return osp.join(REPO_ROOT, 'configs', method,
                    f'{method}_vit-tiny-p4_1xb256-coslr-10e_fashion-mnist.py')


def current_rss_mb() -> Optional[float]:
    """Resident memory of this process (``VmRSS``) in MiB."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (Linux: KiB units)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# Imported by the training processes through ``custom_imports``; force=True
# lets the module be imported again under another name (e.g. by tests).
@HOOKS.register_module(force=True)
class SoakRecorderHook(Hook):
    """Record losses and memory; stop after a given iteration.

    Appends one JSON line per iteration (``iter`` and every ``loss*``
    output) to ``<work_dir>/soak_losses.jsonl`` and, every ``interval``
    iterations, one line with ``iter``, ``rss_mb``, ``peak_rss_mb`` and
    ``pid`` to ``<work_dir>/soak_memory.jsonl``; the files grow across
    resumed segments.

    Args:
        interval (int): Iterations between memory records.
        stop_at (int, optional): Stop training after this iteration (the
            checkpoint of that iteration is written first). Defaults to None.
    """

    priority = 'LOWEST'

    def __init__(self, interval: int, stop_at: Optional[int] = None) -> None:
        self.interval = interval
        self.stop_at = stop_at

    def _append(self, runner, name: str, record: dict) -> None:
        with open(osp.join(runner.work_dir, name), 'a') as f:
            f.write(json.dumps(record) + '\n')

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        it = runner.iter + 1
        # float() of a float32 is exact and json keeps every digit
        losses = {
            k: float(v) if not hasattr(v, 'item') else float(v.item())
            for k, v in (outputs or {}).items() if 'loss' in k
        }
        self._append(runner, LOSSES_FILE, dict(iter=it, **losses))
        if self.every_n_train_iters(runner, self.interval):
            self._append(
                runner, MEMORY_FILE,
                dict(
                    iter=it,
                    rss_mb=current_rss_mb(),
                    peak_rss_mb=peak_rss_mb(),
                    pid=os.getpid()))
        if self.stop_at is not None and it >= self.stop_at:
            runner.train_loop.stop_training = True


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--methods',
        nargs='+',
        default=ALL_METHODS,
        choices=ALL_METHODS,
        help='methods whose Fashion-MNIST pre-training config runs')
    parser.add_argument(
        '--configs',
        nargs='+',
        help='config files to run instead of the methods\' configs')
    parser.add_argument('--iters', type=int, default=2000)
    parser.add_argument('--resume-every', type=int, default=500)
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--num-workers', type=int, default=0)
    parser.add_argument(
        '--jobs',
        type=int,
        default=1,
        help='2 runs the uninterrupted and the resumed training side by side')
    parser.add_argument('--data-root', default='data/fashion-mnist')
    parser.add_argument('--out', default='work_dirs/soak')
    parser.add_argument(
        '--quick',
        action='store_true',
        help='smoke version: 20 iterations, resume every 10, batch 4')
    args = parser.parse_args(argv)
    if args.quick:
        args.iters, args.resume_every, args.batch_size = 20, 10, 4
    if min(args.iters, args.resume_every, args.jobs) < 1:
        parser.error('--iters, --resume-every and --jobs must be >= 1')
    return args


def soak_config(path: str, args: argparse.Namespace) -> Config:
    """The config of ``path`` as an iteration-based, checkpointing run."""
    cfg = Config.fromfile(path)
    loader = cfg.train_dataloader
    loader.batch_size = args.batch_size
    loader.num_workers = args.num_workers
    loader.persistent_workers = args.num_workers > 0
    loader.dataset.data_prefix = osp.abspath(args.data_root)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=args.iters)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook',
        by_epoch=False,
        interval=args.resume_every,
        max_keep_ckpts=2)
    cfg.default_hooks.logger = dict(
        type='LoggerHook', interval=max(1, args.resume_every // 10))
    cfg.log_processor = dict(window_size=10, by_epoch=False)
    cfg.randomness = dict(seed=0, diff_rank_seed=True, deterministic=True)
    cfg.custom_imports = dict(
        imports=list(cfg.custom_imports.imports) + ['soak_resume'],
        allow_failed_imports=False)
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
        dict(type='SoakRecorderHook', interval=args.resume_every)
    ]
    return cfg


def train_segment(cfg: Config, work_dir: str, stop_at: Optional[int],
                  resume_from: Optional[str]) -> float:
    """One ``tools/train.py`` process; returns its wall time in seconds."""
    # a deep copy: the two runs' threads set their own stop_at
    cfg = copy.deepcopy(cfg)
    cfg.custom_hooks[-1]['stop_at'] = stop_at
    os.makedirs(work_dir, exist_ok=True)
    name = 'segment_end' if stop_at is None else f'segment_{stop_at}'
    cfg_file = osp.join(work_dir, f'{name}.py')
    cfg.dump(cfg_file)
    cmd = [
        sys.executable,
        osp.join(REPO_ROOT, 'tools', 'train.py'), cfg_file, '--work-dir',
        work_dir
    ]
    if resume_from is not None:
        cmd += ['--resume', resume_from]
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [REPO_ROOT, osp.dirname(osp.abspath(__file__))] +
        ([env['PYTHONPATH']] if env.get('PYTHONPATH') else []))
    env.setdefault('OMP_NUM_THREADS', '1')
    start = time.time()
    with open(osp.join(work_dir, f'{name}.log'), 'w') as log:
        proc = subprocess.run(
            cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f'{" ".join(cmd)} failed ({proc.returncode}); '
                           f'see {log.name}')
    return time.time() - start


def read_jsonl(path: str) -> List[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def compare_losses(full: List[dict], resumed: List[dict], iters: int) -> Dict:
    """Largest absolute difference and exact equality of two loss curves."""
    a = {r['iter']: r for r in full}
    b = {r['iter']: r for r in resumed}
    complete = (
        sorted(a) == list(range(1, iters + 1)) and sorted(b) == sorted(a)
        and len(full) == len(resumed) == iters)
    max_diff, identical = 0.0, complete
    for it in sorted(set(a) & set(b)):
        if a[it].keys() != b[it].keys():
            identical = False
            continue
        for k in a[it]:
            if k == 'iter':
                continue
            max_diff = max(max_diff, abs(a[it][k] - b[it][k]))
            identical = identical and a[it][k] == b[it][k]
    return dict(
        max_abs_loss_diff=max_diff, identical=identical, complete=complete)


def soak(path: str, name: str, args: argparse.Namespace) -> Dict:
    """Run the uninterrupted and the resumed training of one config."""
    cfg = soak_config(path, args)
    root = osp.join(args.out, name)
    full_dir, resumed_dir = osp.join(root, 'full'), osp.join(root, 'resumed')
    for d in (full_dir, resumed_dir):
        for f in (LOSSES_FILE, MEMORY_FILE):
            if osp.exists(osp.join(d, f)):
                os.remove(osp.join(d, f))  # records of an earlier soak
    stops = list(range(args.resume_every, args.iters, args.resume_every))

    def uninterrupted() -> float:
        print(f'[{name}] uninterrupted: {args.iters} iterations', flush=True)
        return train_segment(cfg, full_dir, None, None)

    def resumed() -> float:
        seconds, resume_from = 0.0, None
        for stop in stops + [None]:
            print(
                f'[{name}] resumed run: segment up to '
                f'{stop or args.iters}',
                flush=True)
            seconds += train_segment(cfg, resumed_dir, stop, resume_from)
            resume_from = osp.join(resumed_dir, f'iter_{stop}.pth')
        return seconds

    # the two runs are independent processes: side by side with --jobs 2
    with ThreadPoolExecutor(max_workers=min(args.jobs, 2)) as pool:
        full_job, resumed_job = pool.submit(uninterrupted), pool.submit(
            resumed)
        full_time, resumed_time = full_job.result(), resumed_job.result()
    full_mem = read_jsonl(osp.join(full_dir, MEMORY_FILE))
    resumed_mem = read_jsonl(osp.join(resumed_dir, MEMORY_FILE))
    result = dict(
        method=name,
        config=osp.relpath(path, REPO_ROOT),
        iters=args.iters,
        resume_every=args.resume_every,
        batch_size=args.batch_size,
        segments=len(stops) + 1,
        full_time_s=round(full_time, 1),
        resumed_time_s=round(resumed_time, 1),
        full_memory=full_mem,
        resumed_memory=resumed_mem,
        rss_growth_mb=(full_mem[-1]['rss_mb'] -
                       full_mem[0]['rss_mb'] if len(full_mem) > 1 else 0.0),
        **compare_losses(
            read_jsonl(osp.join(full_dir, LOSSES_FILE)),
            read_jsonl(osp.join(resumed_dir, LOSSES_FILE)), args.iters))
    return result


def markdown(results: List[Dict], args: argparse.Namespace) -> str:
    """One row per method and memory record."""
    lines = [
        f'Soak: {args.iters} iterations, resume every {args.resume_every}, '
        f'batch {args.batch_size}, num_workers {args.num_workers}, data '
        f'{args.data_root}.', '',
        '| method | iter | RSS uninterrupted (MiB) | peak (MiB) | '
        'RSS resumed (MiB) | peak (MiB) |', '|---|---|---|---|---|---|'
    ]
    for r in results:
        resumed = {m['iter']: m for m in r['resumed_memory']}
        for m in r['full_memory']:
            o = resumed.get(m['iter'], {})
            lines.append(
                f"| {r['method']} | {m['iter']} | {m['rss_mb']:.0f} | "
                f"{m['peak_rss_mb']:.0f} | {o.get('rss_mb', float('nan')):.0f}"
                f" | {o.get('peak_rss_mb', float('nan')):.0f} |")
    lines += [
        '', '| method | RSS growth (MiB) | max abs loss diff | identical | '
        'time uninterrupted (s) | time resumed (s) |',
        '|---|---|---|---|---|---|'
    ]
    for r in results:
        lines.append(f"| {r['method']} | {r['rss_growth_mb']:+.1f} | "
                     f"{r['max_abs_loss_diff']:.3g} | "
                     f"{'yes' if r['identical'] else 'no'} | "
                     f"{r['full_time_s']} | {r['resumed_time_s']} |")
    return '\n'.join(lines) + '\n'


def main(argv: Optional[List[str]] = None) -> List[Dict]:
    args = parse_args(argv)
    if args.configs:
        runs = [(p, osp.splitext(osp.basename(p))[0]) for p in args.configs]
    else:
        runs = [(method_config(m), m) for m in args.methods]
    os.makedirs(args.out, exist_ok=True)
    results = []
    for path, name in runs:
        results.append(soak(osp.abspath(path), name, args))
        # tables after every method, so a cut-off run keeps what finished
        table = markdown(results, args)
        with open(osp.join(args.out, 'soak_resume.md'), 'w') as f:
            f.write(table)
        with open(osp.join(args.out, 'soak_resume.json'), 'w') as f:
            json.dump(dict(args=vars(args), results=results), f, indent=2)
    print(table)
    return results


if __name__ == '__main__':
    main()
