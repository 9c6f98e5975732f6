# Copyright (c) OpenMMLab. All rights reserved.
"""Shape helpers shared by the model modules' argument checks; value checks
are :mod:`mim_plugins.utils.checks`."""
import math
from typing import Sequence, Tuple, Union

from mmengine.utils import to_2tuple

from ...utils.checks import check_choice, check_range  # noqa: F401


def check_divisible(name: str, value: int, divisor: int,
                    divisor_name: str) -> None:
    """Check that ``value`` is a multiple of ``divisor``.

    Args:
        name (str): Field name of ``value``.
        value (int): The value to check.
        divisor (int): What it must be a multiple of.
        divisor_name (str): Field name of ``divisor`` for the message.

    Raises:
        ValueError: If ``value % divisor != 0``.
    """
    if value % divisor:
        raise ValueError(f'`{name}` must be divisible by `{divisor_name}`='
                         f'{divisor} (a multiple of {divisor}), got {value}')


def check_square(name: str, value: int) -> int:
    """Check that a token count fills a square grid.

    Args:
        name (str): Field name used in the message.
        value (int): The number of tokens.

    Returns:
        int: The side of the grid.

    Raises:
        ValueError: If ``value`` is not a square number.
    """
    side = math.isqrt(value) if isinstance(value, int) and value > 0 else 0
    if side * side != value or side == 0:
        raise ValueError(f'`{name}` must be a square number (a square grid '
                         f'of tokens), got {value!r}')
    return side


def check_img_size(img_size: Union[int, Sequence[int]],
                   patch_size: Union[int, Sequence[int]]) -> Tuple[int, int]:
    """Check that the image splits into whole patches.

    ``PatchEmbed`` would pad a ragged border, but the reconstruction targets
    patchify the unpadded image, so pre-training would fail later on a
    shape mismatch.

    Args:
        img_size (int | Sequence[int]): Input size, ``(H, W)`` or one side.
        patch_size (int | Sequence[int]): Patch size.

    Returns:
        tuple[int, int]: ``(H, W)``.

    Raises:
        ValueError: If a side is not a multiple of the patch size.
    """
    size, patch = to_2tuple(img_size), to_2tuple(patch_size)
    if size[0] % patch[0] or size[1] % patch[1]:
        raise ValueError(f'`img_size` must be divisible by `patch_size`='
                         f'{patch_size} (a multiple of the patch size), got '
                         f'{img_size}')
    return tuple(size)
