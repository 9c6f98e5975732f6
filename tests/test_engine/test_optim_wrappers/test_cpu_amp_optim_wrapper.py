# Copyright (c) OpenMMLab. All rights reserved.
import pytest
import torch
from mmpretrain.registry import OPTIM_WRAPPERS

from mim_plugins.engine import CPUAmpOptimWrapper


def test_bf16_autocast_with_float32_parameters():
    model = torch.nn.Linear(4, 2)
    optim = torch.optim.SGD(model.parameters(), lr=0.1)
    # an AmpOptimWrapper config (loss_scale) builds with the new type
    wrapper = OPTIM_WRAPPERS.build(
        dict(type='CPUAmpOptimWrapper', loss_scale='dynamic'),
        default_args=dict(optimizer=optim))
    assert isinstance(wrapper, CPUAmpOptimWrapper)
    with wrapper.optim_context(model):
        out = model(torch.randn(3, 4))
    assert out.dtype == torch.bfloat16
    assert model(torch.randn(3, 4)).dtype == torch.float32  # outside
    before = model.weight.detach().clone()
    wrapper.update_params(out.float().pow(2).mean())
    assert model.weight.dtype == torch.float32
    assert not torch.equal(before, model.weight)


def test_float16_is_refused():
    optim = torch.optim.SGD(torch.nn.Linear(4, 2).parameters(), lr=0.1)
    with pytest.raises(ValueError, match='optim_wrapper.dtype.*bfloat16'):
        CPUAmpOptimWrapper(dtype='float16', optimizer=optim)
