# Copyright (c) OpenMMLab. All rights reserved.
"""GPU calibration: what ``tools/analysis_tools/gpu_memory_check.py``
measures on CUDA against the planner's prediction, and the margin the planner
takes from it."""
import json
from typing import Dict, Iterable, Optional, Sequence, Union

from .planner import GIB

CALIBRATION_FORMAT = 'mim_plugins.gpu_memory_check/1'


class CalibrationError(ValueError):
    """A calibration file the planner cannot use."""


def calibration_run(name: str,
                    precision: str,
                    attention: str,
                    batch: int,
                    predicted_bytes: float,
                    max_allocated: Optional[float] = None,
                    max_reserved: Optional[float] = None) -> Dict:
    """One GPU run beside the planner's prediction.

    Args:
        name (str): Config name (file name without ``.py``).
        precision (str): ``'fp32'`` or ``'amp'``.
        attention (str): The attention path the run used.
        batch (int): Per-device batch.
        predicted_bytes (float): The planner's predicted peak (no margin).
        max_allocated (float, optional): ``torch.cuda.max_memory_allocated``
            of the run; None if it ran out of memory.
        max_reserved (float, optional): ``torch.cuda.max_memory_reserved``.

    Returns:
        dict: The run, in GiB, with ``allocated_ratio`` and
        ``reserved_ratio`` (measured / predicted) and ``oom``.
    """
    oom = max_allocated is None or max_reserved is None
    run = dict(
        name=name,
        precision=precision,
        attention=attention,
        batch=int(batch),
        predicted_peak_gib=predicted_bytes / GIB,
        oom=oom)
    if not oom:
        run.update(
            max_allocated_gib=max_allocated / GIB,
            max_reserved_gib=max_reserved / GIB,
            allocated_ratio=max_allocated / predicted_bytes,
            reserved_ratio=max_reserved / predicted_bytes)
    return run


def load_calibration(paths: Union[str, Sequence[str]],
                     wanted: Iterable[tuple]) -> Dict[tuple, Dict]:
    """The measured margin for every ``(name, precision)`` in ``wanted``.

    For each, the ratio is the largest ``reserved_ratio`` of its runs that
    did not run out of memory, and ``context_gib`` the CUDA context measured
    beside them (device memory in use that ``max_memory_reserved`` does not
    count).

    Args:
        paths (str | Sequence[str]): JSON files of ``gpu_memory_check.py``.
        wanted (Iterable[tuple]): ``(config name, precision)`` pairs.

    Returns:
        dict: ``{(name, precision): dict(ratio, context_gib, device)}``.

    Raises:
        CalibrationError: A file that is not JSON or not a report of
            ``gpu_memory_check.py``, a run with a missing or non-positive
            figure, or a wanted pair without a run.
    """
    paths = [paths] if isinstance(paths, str) else list(paths)
    runs = []
    for path in paths:
        hint = ('expected the JSON written by '
                'tools/analysis_tools/gpu_memory_check.py')
        try:
            with open(path) as f:
                report = json.load(f)
        except (OSError, ValueError) as err:
            raise CalibrationError(
                f'--calibration {path}: cannot read it ({err}); {hint}.')
        if not isinstance(report, dict) or \
                report.get('format') != CALIBRATION_FORMAT:
            found = report.get('format') if isinstance(report, dict) else \
                type(report).__name__
            raise CalibrationError(
                f'--calibration {path}: format {found!r}, expected '
                f'{CALIBRATION_FORMAT!r}; {hint}.')
        for key in ('device', 'context_gib', 'runs'):
            if key not in report:
                raise CalibrationError(
                    f'--calibration {path}: no {key!r}; {hint}.')
        context = report['context_gib']
        if not isinstance(context, (int, float)) or context < 0:
            raise CalibrationError(
                f'--calibration {path}: context_gib must be a number >= 0, '
                f'got {context!r}.')
        for i, run in enumerate(report['runs']):
            keys = ('name', 'precision', 'batch', 'oom') + (
                () if run.get('oom') else ('reserved_ratio', ))
            missing = [k for k in keys if k not in run]
            if missing:
                raise CalibrationError(
                    f'--calibration {path}: run {i} has no {missing}.')
            ratio_ = run.get('reserved_ratio')
            if not run['oom'] and not (isinstance(ratio_, (int, float))
                                       and 0 < ratio_ < float('inf')):
                raise CalibrationError(
                    f'--calibration {path}: run {i} ({run["name"]}) has '
                    f'reserved_ratio {ratio_!r}; it must be a positive '
                    'number.')
            runs.append((run, report['device'], context))
    measured = sorted({(r['name'], r['precision'])
                       for r, _, _ in runs if not r['oom']})
    result = {}
    for name, precision in wanted:
        fits = [(r, dev, ctx) for r, dev, ctx in runs
                if not r['oom'] and (r['name'], r['precision']) == (name,
                                                                    precision)]
        if not fits:
            have = ', '.join(f'{n} ({p})' for n, p in measured) or 'none'
            raise CalibrationError(
                f'--calibration {", ".join(paths)}: no GPU run of {name} '
                f'({precision}) that fitted; runs there: {have}. Run '
                'tools/analysis_tools/gpu_memory_check.py on that config '
                '(--amp for amp) or leave --calibration out.')
        result[(name, precision)] = dict(
            ratio=max(r['reserved_ratio'] for r, _, _ in fits),
            context_gib=max(ctx for _, _, ctx in fits),
            device=', '.join(sorted({dev
                                     for _, dev, _ in fits})))
    return result
