# Copyright (c) OpenMMLab. All rights reserved.
"""Build-time argument checks with uniform error messages.

Every check raises with a message of the form
"`<field>` must be <allowed values>, got <value>", so that a bad config
names the offending field and what it accepts.
"""
import math
import numbers
from typing import Optional, Sequence, Tuple, Union

from mmengine.utils import to_2tuple


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


def check_mixing_ratios(mask_ratio: float,
                        range_mask_ratio: float,
                        prefix: str = '') -> None:
    """Check MixMIM's mixing ratios.

    A fraction ``mask_ratio + U(0, range_mask_ratio)`` of the cells is
    taken from the partner image, and both images must keep a cell.

    Args:
        mask_ratio (float): Fraction of mixed cells.
        range_mask_ratio (float): Range of the random extra fraction.
        prefix (str): Prepended to the field names in the messages, e.g.
            ``'backbone.'``. Defaults to ``''``.

    Raises:
        ValueError: If ``mask_ratio`` is not in (0, 1) or
            ``range_mask_ratio`` not in ``[0, 1 - mask_ratio)``.
    """
    if not 0 < mask_ratio < 1:
        raise ValueError(f'`{prefix}mask_ratio` (fraction of mixed cells) '
                         f'must be in (0, 1), got {mask_ratio}')
    if range_mask_ratio < 0 or mask_ratio + range_mask_ratio >= 1:
        raise ValueError(
            f'`{prefix}range_mask_ratio` must satisfy 0 <= range_mask_ratio '
            f'< 1 - mask_ratio (mask_ratio={mask_ratio}), got '
            f'{range_mask_ratio}')


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


def check_masked_vit_kwargs(kwargs: dict) -> None:
    """Check the ``MAEViT`` arguments a masked-ViT subclass passes on.

    ``MAEViT`` accepts any ``mask_ratio`` (0 or 1 leaves nothing to
    reconstruct) and any ``img_size``/``patch_size`` pair.

    Args:
        kwargs (dict): The keyword arguments given to ``MAEViT``.
    """
    check_range(
        'mask_ratio',
        kwargs.get('mask_ratio', 0.75),
        0,
        1,
        low_open=True,
        high_open=True)
    check_img_size(kwargs.get('img_size', 224), kwargs.get('patch_size', 16))


def check_mae_parts(backbone, neck, head) -> None:
    """Check that a masked ViT, an MAE-style decoder and head fit together.

    Compares the encoder width, patch grid, patch size and channels with
    what the decoder (``decoder_embed``, ``decoder_pred``, ``num_patches``)
    and the head (``patch_size``, ``in_channels``) were built for; parts
    without one of these attributes are not checked for it.

    Args:
        backbone (nn.Module): A ``MAEViT``-like encoder.
        neck (nn.Module): A ``MAEPretrainDecoder``-like decoder.
        head (nn.Module): A ``MAEPretrainHead``-like head.

    Raises:
        ValueError: On the first mismatch, naming the field to change.
    """
    proj = backbone.patch_embed.projection
    width, channels = proj.out_channels, proj.in_channels
    patch = proj.kernel_size[0]
    embed = getattr(neck, 'decoder_embed', None)
    if embed is not None and embed.in_features != width:
        raise ValueError(f'`neck.embed_dim` must be the backbone width '
                         f'{width}, got {embed.in_features}')
    num_patches = getattr(neck, 'num_patches', None)
    if num_patches is not None and num_patches != backbone.num_patches:
        raise ValueError(f'`neck.num_patches` must be the backbone\'s '
                         f'{backbone.num_patches} patches, got {num_patches}')
    head_patch = getattr(head, 'patch_size', patch)
    if head_patch != patch:
        raise ValueError(f'`head.patch_size` must be the backbone '
                         f'patch size {patch}, got {head_patch}')
    head_channels = getattr(head, 'in_channels', channels)
    if head_channels != channels:
        raise ValueError(f'`head.in_channels` must be the backbone '
                         f'in_channels {channels}, got {head_channels}')
    pred = getattr(neck, 'decoder_pred', None)
    expected = patch * patch * channels
    if pred is not None and getattr(pred, 'out_features', expected) != \
            expected and getattr(head, 'patch_size', None) is not None:
        raise ValueError(
            f'`neck.patch_size`**2 * `neck.in_chans` must be {expected} '
            f'(patch size {patch}, {channels} channels), got '
            f'{pred.out_features}')
