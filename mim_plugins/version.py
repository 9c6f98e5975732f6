# Copyright (c) OpenMMLab. All rights reserved.
from typing import Tuple

__version__ = '0.1.0'


def parse_version_info(version_str: str) -> Tuple:
    """Parse a version string into a tuple.

    Args:
        version_str (str): The version string, e.g. ``'0.1.0'`` or
            ``'0.1.0rc1'``.

    Returns:
        tuple: The version info, e.g. ``(0, 1, 0)`` or ``(0, 1, 0, 'rc1')``.
    """
    version_info = []
    for x in version_str.split('.'):
        if x.isdigit():
            version_info.append(int(x))
        elif x.find('rc') != -1:
            patch_version = x.split('rc')
            version_info.append(int(patch_version[0]))
            version_info.append(f'rc{patch_version[1]}')
    return tuple(version_info)


version_info = parse_version_info(__version__)
