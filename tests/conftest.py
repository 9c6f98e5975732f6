# Copyright (c) OpenMMLab. All rights reserved.
"""Shared fixtures: a tiny Fashion-MNIST-format dataset made on the fly."""
import pytest
from helpers import make_fake_fmnist


@pytest.fixture(scope='session')
def fmnist_root(tmp_path_factory) -> str:
    return make_fake_fmnist(str(tmp_path_factory.mktemp('fashion-mnist')))
