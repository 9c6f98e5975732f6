# Copyright (c) OpenMMLab. All rights reserved.
"""Checks of config values, with messages that name the field and what it
accepts: "`<field>` must be <allowed values>, got <value>"."""
import numbers
from typing import Optional, Sequence


def _interval(low: Optional[float], high: Optional[float], low_open: bool,
              high_open: bool) -> str:
    if high is None:
        return f'{">" if low_open else ">="} {low}'
    if low is None:
        return f'{"<" if high_open else "<="} {high}'
    left, right = '(' if low_open else '[', ')' if high_open else ']'
    return f'in {left}{low}, {high}{right}'


def check_range(name: str,
                value,
                low: Optional[float] = None,
                high: Optional[float] = None,
                low_open: bool = False,
                high_open: bool = False,
                integer: bool = False):
    """Check that ``value`` is a number (or an int) inside an interval.

    Args:
        name (str): Field name used in the message, e.g. ``'mask_ratio'``.
        value: The value to check.
        low (float, optional): Lower bound; None for no bound.
        high (float, optional): Upper bound; None for no bound.
        low_open (bool): Exclude ``low`` itself. Defaults to False.
        high_open (bool): Exclude ``high`` itself. Defaults to False.
        integer (bool): Require an int. Defaults to False.

    Returns:
        The value, unchanged.

    Raises:
        TypeError: If ``value`` is not a number (an int with
            ``integer=True``); bools are rejected.
        ValueError: If ``value`` lies outside the interval.
    """
    kind = 'an int' if integer else 'a number'
    allowed = kind if low is None and high is None else \
        f'{kind} {_interval(low, high, low_open, high_open)}'
    number_type = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, number_type):
        raise TypeError(f'`{name}` must be {allowed}, got {value!r} '
                        f'({type(value).__name__})')
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high
                                     if high_open else value > high)
    if too_low or too_high:
        raise ValueError(f'`{name}` must be {allowed}, got {value!r}')
    return value


def check_choice(name: str, value, choices: Sequence) -> None:
    """Check that ``value`` is one of ``choices``.

    Args:
        name (str): Field name used in the message.
        value: The value to check.
        choices (Sequence): The allowed values.

    Raises:
        ValueError: If ``value`` is not in ``choices``.
    """
    if value not in choices:
        raise ValueError(f'`{name}` must be one of {choices}, got {value!r}')
