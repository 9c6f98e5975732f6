# Copyright (c) OpenMMLab. All rights reserved.
import warnings
from typing import Optional, Set

import mmcv
import mmengine.fileio as fileio
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmpretrain.registry import TRANSFORMS


class CorruptImageError(OSError):
    """An image file exists but cannot be decoded."""


@TRANSFORMS.register_module()
class LoadImageFromFileChecked(LoadImageFromFile):
    """``LoadImageFromFile`` that names the file an image fails to decode.

    mmcv's ``LoadImageFromFile`` fails on a corrupt file (garbage, truncated,
    empty) with a bare ``AssertionError`` (cv2 backend), or with the
    decoder's own error that does not name the file (pillow backend, empty
    files). This transform raises :class:`CorruptImageError` (an
    ``OSError``) naming the file and the reason instead, or, with
    ``skip_corrupt=True``, warns once per file and returns ``None``: the
    training dataset (``mmengine.dataset.BaseDataset``, ``test_mode=False``)
    then samples another index in its place, so an epoch still has the
    usual length. Test-mode datasets do not refetch and raise on ``None``,
    so skipping applies to training data only.

    Example:
        >>> train_pipeline = [
        >>>     dict(type='LoadImageFromFileChecked', skip_corrupt=True),
        >>>     ...]

    Args:
        skip_corrupt (bool): Skip undecodable images with a warning instead
            of raising. Defaults to False.
        **kwargs: Arguments of :class:`mmcv.transforms.LoadImageFromFile`
            (``ignore_empty`` still governs files that cannot be read).
    """

    def __init__(self, skip_corrupt: bool = False, **kwargs) -> None:
        if not isinstance(skip_corrupt, bool):
            raise TypeError('`skip_corrupt` must be a bool (True or False), '
                            f'got {skip_corrupt!r}')
        super().__init__(**kwargs)
        self.skip_corrupt = skip_corrupt
        # files already reported by this process (dataloader worker)
        self._warned: Set[str] = set()

    def _read(self, filename: str) -> bytes:
        if self.file_client_args is not None:
            file_client = fileio.FileClient.infer_client(
                self.file_client_args, filename)
            return file_client.get(filename)
        return fileio.get(filename, backend_args=self.backend_args)

    def transform(self, results: dict) -> Optional[dict]:
        """Load the image of ``results['img_path']``.

        Args:
            results (dict): Result dict from the dataset.

        Returns:
            dict | None: ``results`` with ``img``, ``img_shape`` and
            ``ori_shape``; ``None`` for a skipped file.

        Raises:
            CorruptImageError: If the file cannot be decoded and
                ``skip_corrupt`` is False.
        """
        filename = results['img_path']
        try:
            img_bytes = self._read(filename)
        except Exception:
            if self.ignore_empty:
                return None
            raise
        try:
            img = mmcv.imfrombytes(
                img_bytes, flag=self.color_type, backend=self.imdecode_backend)
            reason = 'the decoder returned no image'
        except Exception as e:
            img, reason = None, f'{type(e).__name__}: {e}'.strip()
        if img is None:
            return self._corrupt(str(filename), reason, len(img_bytes))
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def _corrupt(self, filename: str, reason: str, size: int) -> None:
        message = (f'corrupt image {filename} ({size} bytes, '
                   f'{self.imdecode_backend} backend): {reason}')
        if not self.skip_corrupt:
            raise CorruptImageError(
                f'cannot load {message}. Fix or remove the file, or set '
                'skip_corrupt=True in LoadImageFromFileChecked to skip such '
                'files with a warning.')
        if filename not in self._warned:
            self._warned.add(filename)
            warnings.warn(f'skipping {message}')
        return None

    def __repr__(self) -> str:
        return (super().__repr__()[:-1] +
                f', skip_corrupt={self.skip_corrupt})')
