# Copyright (c) OpenMMLab. All rights reserved.
import warnings
from typing import Optional, Sequence

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS

from mim_plugins.utils.checks import check_range
from mim_plugins.visualization import reconstruct, render_reconstruction_grid


@HOOKS.register_module()
class ReconstructionVisualizationHook(Hook):
    """Send reconstructions of a fixed batch to the visualizer backends.

    Every ``interval`` training iterations, the first ``num_images`` images
    of the first training batch (kept from the start of training, so the
    pictures are comparable over time) are masked with a fixed seed and
    reconstructed; the grid (see
    :func:`mim_plugins.visualization.reconstruct`) goes to
    ``runner.visualizer.add_image`` (local files under the work dir's
    ``vis_data``, TensorBoard or W&B when configured).

    Args:
        interval (int): Iterations between pictures. Defaults to 1000.
        num_images (int): Images per picture. Defaults to 8.
        seed (int): Seed of the mask. Defaults to 0.
        enable (bool): Set False to switch the hook off. Defaults to True.
    """

    priority = 'LOW'

    def __init__(self,
                 interval: int = 1000,
                 num_images: int = 8,
                 seed: int = 0,
                 enable: bool = True) -> None:
        check_range('interval', interval, 1, integer=True)
        check_range('num_images', num_images, 1, integer=True)
        self.interval = interval
        self.num_images = num_images
        self.seed = seed
        self.enable = enable
        self._inputs: Optional[torch.Tensor] = None

    @staticmethod
    def _model(runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def before_train_iter(self, runner, batch_idx: int, data_batch=None):
        if not self.enable or self._inputs is not None or data_batch is None:
            return
        model = self._model(runner)
        with torch.no_grad():
            data = model.data_preprocessor(data_batch, False)
        inputs = data['inputs']
        if isinstance(inputs, (list, tuple)):
            inputs = inputs[0]
        self._inputs = inputs[:self.num_images].detach().clone()

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        if not self.enable or self._inputs is None or \
                not self.every_n_train_iters(runner, self.interval):
            return
        model = self._model(runner)
        try:
            panels = reconstruct(model, self._inputs, seed=self.seed)
        except NotImplementedError as e:
            warnings.warn(f'{e}; ReconstructionVisualizationHook disabled')
            self.enable = False
            return
        preprocessor = model.data_preprocessor
        image = render_reconstruction_grid(
            panels,
            mean=_channel_stats(preprocessor, 'mean'),
            std=_channel_stats(preprocessor, 'std'),
            num_images=self.num_images,
            title=f'{type(model).__name__}, iteration {runner.iter + 1}')
        runner.visualizer.add_image(
            'reconstruction', image, step=runner.iter + 1)


def _channel_stats(preprocessor, name: str) -> Sequence[float]:
    """Per-channel mean/std of a data preprocessor (identity if absent)."""
    value = getattr(preprocessor, name, None)
    if value is None:
        return [0.0] if name == 'mean' else [1.0]
    return value.flatten().tolist()
