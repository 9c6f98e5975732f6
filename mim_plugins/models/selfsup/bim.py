# Copyright (c) OpenMMLab. All rights reserved.
import copy
from collections import OrderedDict
from functools import partial
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import ModuleList
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmpretrain.models.selfsup.base import BaseSelfSupervisor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import nn

from ..backbones.bim_vit import BIMViT
from ..utils.decoder import check_decoder, decoder_loss
from ..utils.masked_vit import masked_vit_grid

BlockForward = Callable[..., Tuple[Dict[str, torch.Tensor], torch.Tensor,
                                   torch.Tensor, torch.Tensor]]


def _per_block_cfgs(cfg: Union[dict, Sequence[dict], nn.Module], name: str,
                    num_blocks: int) -> List[Union[dict, nn.Module]]:
    """One config per block: a dict is repeated, a list must have K items."""
    if isinstance(cfg, (dict, nn.Module)):
        return [copy.deepcopy(cfg) for _ in range(num_blocks)]
    if isinstance(cfg, (list, tuple)):
        if len(cfg) != num_blocks:
            raise ValueError(
                f'{name} must be one config (shared by every block) or a '
                f'list of one config per block, i.e. len({name}) == '
                f'len(block_boundaries) == {num_blocks}, got {len(cfg)}.')
        return list(cfg)
    raise TypeError(f'{name} must be a dict or a list of {num_blocks} dicts, '
                    f'got {type(cfg)}.')


@MODELS.register_module()
class BIM(BaseSelfSupervisor):
    """BIM: block-wise masked image modeling.

    Implementation of `BIM: Block-Wise Self-Supervised Learning with Masked
    Image Modeling <https://arxiv.org/abs/2311.17218>`_.

    The masked ViT encoder (:class:`BIMViT`) is cut into K blocks by its
    ``block_boundaries``. Block k has its own MAE decoder and head and is
    trained on its own norm-pix reconstruction loss; block k's input is
    detached from block k-1, so no gradient crosses blocks. :meth:`train_step`
    runs forward -> backward -> step block by block, so only one block's
    graph is alive at a time, which bounds the peak activation memory by the
    largest block (plus its decoder) instead of the whole network.

    A block's decoder is any decoder (:func:`decoder_loss`), and the block
    loss is the sum of its losses: MAE's, a PR-MIM partial one
    (:class:`PRMIMPretrainDecoder` with a :class:`PRMIMPretrainHead`,
    ``loss_kept + loss_thrown``) or a LocalMIM scale decoder
    (:class:`LocalMIMDecoder` with a one-scale :class:`LocalMIMHead`).

    Args:
        backbone (dict): Config of a :class:`BIMViT`.
        neck (dict | list[dict]): Decoder config shared by every block
            (built once per block) or a list of one config per block.
        head (dict | list[dict]): Head config shared by every block or a list
            of one config per block.
        target_generator (dict, optional): Unused, kept for the
            ``BaseSelfSupervisor`` interface.
        pretrained (str, optional): Checkpoint to initialise from.
        data_preprocessor (dict, optional): Data pre-processor config.
        init_cfg (dict | list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 backbone: dict,
                 neck: Union[dict, Sequence[dict]],
                 head: Union[dict, Sequence[dict]],
                 target_generator: Optional[dict] = None,
                 pretrained: Optional[str] = None,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(
            backbone=backbone,
            target_generator=target_generator,
            pretrained=pretrained,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        if not isinstance(self.backbone, BIMViT):
            raise TypeError('BIM needs a block-wise backbone: backbone.type '
                            'must be "BIMViT" (with block_boundaries), got '
                            f'{type(self.backbone).__name__}.')
        num_blocks = self.backbone.num_blocks
        # mmengine's ModuleList: init_weights reaches every decoder (sin-cos
        # position embedding, mask token), torch's would skip them.
        self.neck = ModuleList([
            m if isinstance(m, nn.Module) else MODELS.build(m)
            for m in _per_block_cfgs(neck, 'neck', num_blocks)
        ])
        self.head = ModuleList([
            m if isinstance(m, nn.Module) else MODELS.build(m)
            for m in _per_block_cfgs(head, 'head', num_blocks)
        ])
        grid = masked_vit_grid(self.backbone)
        for k, (neck_k, head_k) in enumerate(zip(self.neck, self.head)):
            check_decoder(neck_k, head_k, grid, f' (block {k + 1})')

    @property
    def num_blocks(self) -> int:
        """int: Number of blocks K."""
        return self.backbone.num_blocks

    def get_block_id(self, param_name: str) -> int:
        """Index (0-based) of the block owning a parameter.

        Args:
            param_name (str): Name as in ``self.named_parameters()``.

        Returns:
            int: The block index.
        """
        module, _, rest = param_name.partition('.')
        if module == 'backbone':
            return self.backbone.get_block_id(rest)
        if module in ('neck', 'head'):
            return int(rest.split('.')[0])
        raise ValueError(f'Parameter {param_name} belongs to no BIM block.')

    def block_parameters(self, block: int) -> List[nn.Parameter]:
        """Parameters owned by ``block`` (0-based)."""
        return [
            p for name, p in self.named_parameters()
            if self.get_block_id(name) == block
        ]

    def extract_feat(self, inputs: torch.Tensor):
        """Un-masked features of the full-depth encoder."""
        return self.backbone(inputs, mask=None)

    def forward_block(
        self,
        block: int,
        x: Optional[torch.Tensor],
        inputs: torch.Tensor,
        mask: Optional[torch.Tensor] = None,
        ids_restore: Optional[torch.Tensor] = None
    ) -> Tuple[Dict[str, torch.Tensor], torch.Tensor, torch.Tensor,
               torch.Tensor]:
        """Forward one block, its decoder and its head.

        Args:
            block (int): Block index (0-based).
            x (torch.Tensor, optional): Tokens from the previous block
                (ignored for block 0, which embeds and masks ``inputs``).
            inputs (torch.Tensor): The images (reconstruction target).
            mask (torch.Tensor, optional): Mask from block 0.
            ids_restore (torch.Tensor, optional): Restore ids from block 0.

        Returns:
            tuple: The block's losses (``loss_block{k}``, the sum of its
            decoder's ``loss*`` terms, and its other terms detached as
            ``{name}_block{k}``, e.g. ``mse_kept_block{k}`` of a PR-MIM
            decoder), the block output detached from the graph (the next
            block's input), ``mask`` and ``ids_restore``.
        """
        if block == 0:
            x, mask, ids_restore = self.backbone.forward_stem(inputs)
        x, latent = self.backbone.forward_block(x, block)
        parts = decoder_loss(self.neck[block], self.head[block], latent,
                             ids_restore, mask, inputs)
        name = f'block{block + 1}'
        # no 'loss' in the other names: mmengine sums every '*loss*' key
        losses = {
            f'loss_{name}':
            sum(v for k, v in parts.items() if k.startswith('loss'))
        }
        losses.update((f'{k}_{name}', v.detach()) for k, v in parts.items()
                      if not k.startswith('loss'))
        # Cut the graph: block k+1 never back-propagates into block k.
        return losses, x.detach(), mask, ids_restore

    def loss(self, inputs: torch.Tensor, data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """All block losses in one graph (``train_step`` does not use this).

        Gradients are the same as block-wise training's, but every block's
        graph is alive at once, so there is no memory saving.
        """
        inputs = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        losses = OrderedDict()
        x = mask = ids_restore = None
        for k in range(self.num_blocks):
            block_losses, x, mask, ids_restore = self.forward_block(
                k, x, inputs, mask, ids_restore)
            losses.update(block_losses)
        return losses

    def train_step(
        self,
        data: Union[dict, tuple, list],
        optim_wrapper: OptimWrapperDict,
        block_forwards: Optional[Sequence[BlockForward]] = None
    ) -> Dict[str, torch.Tensor]:
        """Block-wise forward -> backward -> step.

        For each block k: forward block k (its input detached), its decoder
        and head; back-propagate ``loss_block{k}``; step block k's optimizer
        (which also zeroes its gradients); drop the graph; go on with the
        detached output.

        Args:
            data (dict | tuple | list): A batch from the dataloader.
            optim_wrapper (OptimWrapperDict): One optimizer wrapper per block,
                keyed ``block1`` .. ``blockK`` (built by
                ``BIMOptimWrapperConstructor``).
            block_forwards (Sequence[callable], optional): Callables running
                each block like :meth:`forward_block` without its ``block``
                argument, e.g. the per-block DDP modules of
                ``BIMDistributedDataParallel``. Defaults to
                :meth:`forward_block` of each block.

        Returns:
            dict[str, torch.Tensor]: ``loss`` (sum of the block losses) and
            ``loss_block{k}`` for logging, plus ``mse_kept_block{k}`` /
            ``mse_thrown_block{k}`` for blocks with a PR-MIM decoder.
        """
        if isinstance(optim_wrapper, OptimWrapper) and not isinstance(
                optim_wrapper, OptimWrapperDict):
            raise TypeError(
                'BIM trains every block with its own optimizer: set '
                "optim_wrapper.constructor='BIMOptimWrapperConstructor'.")
        wrappers = [
            optim_wrapper[f'block{k + 1}'] for k in range(self.num_blocks)
        ]
        if block_forwards is None:
            block_forwards = [
                partial(self.forward_block, k) for k in range(self.num_blocks)
            ]
        data = self.data_preprocessor(data, True)
        inputs = data['inputs']
        inputs = inputs[0] if isinstance(inputs, (list, tuple)) else inputs

        log_vars = OrderedDict()
        x = mask = ids_restore = None
        for k, (wrapper, forward) in enumerate(zip(wrappers, block_forwards)):
            with wrapper.optim_context(forward):
                losses, x, mask, ids_restore = forward(x, inputs, mask,
                                                       ids_restore)
            # backward frees block k's graph; step zeroes (sets to None)
            # its gradients before block k+1 runs.
            wrapper.update_params(losses[f'loss_block{k + 1}'])
            log_vars.update(
                (key, value.detach()) for key, value in losses.items())
            del losses
        total = sum(log_vars[f'loss_block{k + 1}']
                    for k in range(self.num_blocks))
        return OrderedDict(loss=total, **log_vars)
