# Copyright (c) OpenMMLab. All rights reserved.
"""Corrupt files in an image-folder dataset: named error, or opt-in skip."""
import os.path as osp
import re
import warnings
from typing import Dict, List

import cv2
import mmcv
import numpy as np
import pytest
from mmcv.transforms import LoadImageFromFile
from mmengine.dataset import pseudo_collate
from mmpretrain.registry import DATASETS, TRANSFORMS
from torch.utils.data import DataLoader

import mim_plugins  # noqa: F401
from mim_plugins.datasets import CorruptImageError, LoadImageFromFileChecked

NUM_VALID = 5


def write_image_folder(root: str, corrupt: str = 'garbage') -> Dict:
    """Write a 2-class image folder with valid images and one corrupt file.

    Args:
        root (str): Folder to write into.
        corrupt (str): Kind of corrupt file: ``'garbage'`` (random bytes
            named .jpg), ``'truncated'`` (a PNG cut in half) or ``'empty'``.

    Returns:
        dict: ``valid`` (paths of the valid images) and ``corrupt`` (path of
        the corrupt file).
    """
    rng = np.random.default_rng(0)
    valid = []
    for i in range(NUM_VALID):
        folder = osp.join(root, 'class_a' if i < 3 else 'class_b')
        ext = 'png' if i % 2 else 'jpg'
        path = osp.join(folder, f'img{i}.{ext}')
        img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        mmcv.imwrite(img, path)
        valid.append(path)
    if corrupt == 'garbage':
        path = osp.join(root, 'class_b', 'broken.jpg')
        data = rng.integers(0, 256, 200, dtype=np.uint8).tobytes()
    elif corrupt == 'truncated':
        path = osp.join(root, 'class_b', 'broken.png')
        ok, buf = cv2.imencode(
            '.png', rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
        data = buf.tobytes()[:len(buf) // 2]
    else:
        path = osp.join(root, 'class_b', 'broken.jpg')
        data = b''
    with open(path, 'wb') as f:
        f.write(data)
    return dict(valid=valid, corrupt=path)


def build_dataset(root: str, **load_kwargs):
    """A real mmpretrain ``CustomDataset`` over ``root`` (train mode)."""
    return DATASETS.build(
        dict(
            type='CustomDataset',
            data_root=root,
            pipeline=[
                dict(type='LoadImageFromFileChecked', **load_kwargs),
                dict(type='PackInputs', meta_keys=('img_path', )),
            ]))


def load_all(dataset) -> List[str]:
    """Iterate a dataloader over ``dataset``; return the loaded paths."""
    loader = DataLoader(
        dataset, batch_size=2, num_workers=0, collate_fn=pseudo_collate)
    paths = []
    for batch in loader:
        for inputs, sample in zip(batch['inputs'], batch['data_samples']):
            assert tuple(inputs.shape) == (3, 16, 16)
            paths.append(sample.img_path)
    return paths


@pytest.mark.parametrize('backend', ['cv2', 'pillow'])
@pytest.mark.parametrize('corrupt', ['garbage', 'truncated', 'empty'])
def test_corrupt_image_error_names_file(tmp_path, corrupt, backend):
    files = write_image_folder(str(tmp_path), corrupt)
    dataset = build_dataset(str(tmp_path), imdecode_backend=backend)
    assert len(dataset) == NUM_VALID + 1
    with pytest.raises(CorruptImageError) as info:
        load_all(dataset)
    message = str(info.value)
    assert files['corrupt'] in message
    assert 'skip_corrupt=True' in message
    # a clean dataset loads fully with the same pipeline
    for path in files['valid']:
        assert dataset.pipeline(dict(img_path=path)) is not None


def test_skip_corrupt_keeps_epoch_length(tmp_path):
    files = write_image_folder(str(tmp_path), 'garbage')
    dataset = build_dataset(str(tmp_path), skip_corrupt=True)
    corrupt_idx = [
        i for i in range(len(dataset))
        if dataset.get_data_info(i)['img_path'] == files['corrupt']
    ]
    assert len(corrupt_idx) == 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        paths = load_all(dataset)
        # asking for the corrupt index again refetches another image and
        # does not warn a second time
        for _ in range(3):
            sample = dataset[corrupt_idx[0]]
            assert sample['data_samples'].img_path in files['valid']
    # every index yields a valid image; the corrupt one is replaced
    assert len(paths) == len(dataset) == NUM_VALID + 1
    assert set(paths) <= set(files['valid'])
    naming = [w for w in caught if files['corrupt'] in str(w.message)]
    assert len(naming) == 1, [str(w.message) for w in caught]
    assert 'skipping corrupt image' in str(naming[0].message)


def test_valid_images_load_as_mmcv(tmp_path):
    files = write_image_folder(str(tmp_path), 'garbage')
    checked = TRANSFORMS.build(
        dict(type='LoadImageFromFileChecked', to_float32=True))
    assert isinstance(checked, LoadImageFromFileChecked)
    plain = LoadImageFromFile(to_float32=True)
    for path in files['valid']:
        ours = checked(dict(img_path=path))
        ref = plain(dict(img_path=path))
        np.testing.assert_array_equal(ours['img'], ref['img'])
        assert ours['img'].dtype == np.float32
        assert ours['img_shape'] == ours['ori_shape'] == (16, 16)
    assert 'skip_corrupt=False' in repr(checked)


def test_missing_file_is_not_skipped(tmp_path):
    missing = str(tmp_path / 'nope.jpg')
    # a missing file is a listing problem, not a corrupt image: not skipped
    with pytest.raises(FileNotFoundError, match=re.escape('nope.jpg')):
        LoadImageFromFileChecked(skip_corrupt=True)(dict(img_path=missing))
    # mmcv's `ignore_empty` keeps its meaning
    assert LoadImageFromFileChecked(ignore_empty=True)(
        dict(img_path=missing)) is None
