# Copyright (c) OpenMMLab. All rights reserved.
"""The one interface between a MIM algorithm and its decoder.

A decoder is a neck and its head. Every algorithm hands its encoder output
to :func:`decoder_loss` and gets a dict of named losses back, whatever the
decoder: mmpretrain's MAE and MixMIM ones, the PR-MIM partial decoders, the
LocalMIM multi-scale ones. It checks, once at build time, that a decoder
fits the encoder with :func:`check_decoder`, the encoder being described
by an :class:`EncoderGrid`.
"""
from typing import Dict, NamedTuple, Optional, Tuple

import torch
from mmpretrain.models import MixMIMPretrainDecoder
from torch import nn

# The decoders that read each kind of encoder output, for the messages.
ENCODER_KINDS = {
    'masked': "'MAEPretrainDecoder', 'PRMIMPretrainDecoder', "
    "'LocalMIMDecoder' (one output) or 'LocalMIMNeck' (LocalMIM's taps)",
    'mixed': "'MixMIMPlusPretrainDecoder' or 'PRMIMMixMIMPretrainDecoder'",
    'swin': "'LocalMIMSwinNeck'",
}


class EncoderGrid(NamedTuple):
    """What an encoder hands its decoder, for the build-time checks.

    Args:
        grids (tuple[int]): Side of the (square) token grid of every output
            the decoder reads (one for MAE, one per tap for LocalMIM).
        widths (tuple[int]): Channels of every output.
        patch_size (int): Side in pixels of the masking unit: the patch,
            the mask cell of a hierarchical encoder, the region one MixMIM
            decoder token reconstructs.
        img_size (tuple[int]): Image height and width.
        in_channels (int): Image channels.
        fewest_masked (int): The fewest tokens a sample (or a MixMIM branch)
            may have to reconstruct.
        masking (str): The encoder settings giving ``fewest_masked``, for
            the messages, e.g. ``'mask_ratio=0.75'``.
        kind (str): How the encoder hides what is reconstructed, which
            decides the decoders that can read it (:data:`ENCODER_KINDS`):
            ``'masked'`` (MAE's per-sample masking, restore ids),
            ``'mixed'`` (MixMIM's two images per sample) or ``'swin'``
            (LocalMIM's Swin, one mask per batch, stage taps). Defaults to
            ``'masked'``.
    """
    grids: Tuple[int, ...]
    widths: Tuple[int, ...]
    patch_size: int
    img_size: Tuple[int, int]
    in_channels: int
    fewest_masked: int
    masking: str
    kind: str = 'masked'

    @property
    def num_tokens(self) -> int:
        """int: Tokens of the first output."""
        return self.grids[0]**2


class ReconstructionDecoder:
    """Mixin of the plugin necks: the neck owns its decoder's loss path.

    A neck whose output needs more than ``head.loss(neck(...), inputs,
    mask)`` (a tuple of masks, a list of scales) says so here, and how it
    fits an encoder; the algorithms call :func:`decoder_loss` and
    :func:`check_decoder` and never look at the neck's type.

    Attributes:
        encoder_kinds (tuple[str]): The :attr:`EncoderGrid.kind` values of
            the encoders this decoder reads.
    """

    encoder_kinds = ('masked', )

    def reconstruction_loss(self, head: nn.Module, latent,
                            ids_restore: Optional[torch.Tensor],
                            mask: torch.Tensor,
                            inputs: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Decode ``latent`` and return the head's named losses.

        Args: as :func:`decoder_loss`, the neck being ``self``.
        """
        raise NotImplementedError

    def check_fits(self, head: nn.Module, encoder: EncoderGrid,
                   where: str) -> None:
        """Raise ``TypeError``/``ValueError`` if the head or the encoder
        do not fit this decoder."""
        self.check_head(head, where)
        self.check_grid(head, encoder, where)

    def check_head(self, head: nn.Module, where: str) -> None:
        """The head type; by default any head but one made for another
        decoder (:func:`check_plain_head`)."""
        check_plain_head(self, head, where)

    def check_grid(self, head: nn.Module, encoder: EncoderGrid,
                   where: str) -> None:
        """Sizes against the encoder; by default an MAE-style pixel
        decoder (:func:`check_tokens`, :func:`check_pixel_head`)."""
        check_tokens(self, encoder, where)
        check_pixel_head(self, head, encoder, where)


class DecoderHead:
    """Mixin of the plugin heads whose loss takes their own decoder's
    outputs (kept and thrown masks, a list of scales).

    Attributes:
        neck_type (str): The ``neck.type`` values the head works with, for
            the message when it is given another decoder.
    """
    neck_type = ''


def decoder_loss(neck: nn.Module, head: nn.Module, latent,
                 ids_restore: Optional[torch.Tensor], mask: torch.Tensor,
                 inputs: torch.Tensor) -> Dict[str, torch.Tensor]:
    """The losses of one decoder (a neck and its head) on an encoder output.

    Args:
        neck (nn.Module): The decoder.
        head (nn.Module): Its head.
        latent (torch.Tensor | list[torch.Tensor]): Encoder output (a list
            of taps for LocalMIM).
        ids_restore (torch.Tensor, optional): ``(B, L)`` restore ids of a
            per-sample mask; None when the mask is shared by the batch
            (MixMIM, LocalMIM on Swin), which then decodes by ``mask``.
        mask (torch.Tensor): The mask, 1 where a token is reconstructed.
        inputs (torch.Tensor): The images (reconstruction target).

    Returns:
        dict[str, torch.Tensor]: Named losses; mmengine sums the ``loss*``
        ones. mmpretrain's MAE and MixMIM decoders give ``loss``, exactly
        as their algorithms do.
    """
    if isinstance(neck, ReconstructionDecoder):
        return neck.reconstruction_loss(head, latent, ids_restore, mask,
                                        inputs)
    # mmpretrain's decoders: MAE's and MixMIM's loss
    pred = neck(latent, mask if ids_restore is None else ids_restore)
    return dict(loss=head.loss(pred, inputs, mask))


def check_decoder(neck: nn.Module,
                  head: nn.Module,
                  encoder: EncoderGrid,
                  where: str = '') -> None:
    """Check once, at build time, that a decoder fits its encoder.

    Args:
        neck (nn.Module): The decoder.
        head (nn.Module): Its head.
        encoder (EncoderGrid): What the encoder hands the decoder.
        where (str): Appended to the messages to locate the decoder, e.g.
            ``' (block 2)'``. Defaults to ``''``.

    Raises:
        TypeError: If neck and head do not make a decoder.
        ValueError: On a size that does not fit, naming the field.
    """
    if isinstance(neck, ReconstructionDecoder):
        kinds = neck.encoder_kinds
    else:  # mmpretrain's decoders
        kinds = ('mixed', ) if isinstance(neck, MixMIMPretrainDecoder) else \
            ('masked', )
    if encoder.kind not in kinds:
        raise TypeError(
            f'`neck.type`={type(neck).__name__!r} decodes {kinds[0]!r} '
            f'encoder outputs, but the backbone\'s are {encoder.kind!r}: '
            f'use `neck.type`={ENCODER_KINDS[encoder.kind]}{where}')
    if isinstance(neck, ReconstructionDecoder):
        neck.check_fits(head, encoder, where)
    else:  # MAE-style pixel prediction
        check_plain_head(neck, head, where)
        check_tokens(neck, encoder, where)
        check_pixel_head(neck, head, encoder, where)


def check_plain_head(neck: nn.Module, head: nn.Module, where: str) -> None:
    """A decoder that predicts pixels and nothing else takes any head but
    one made for another decoder (:class:`DecoderHead`)."""
    if isinstance(head, DecoderHead):
        raise TypeError(f'`head.type`={type(head).__name__!r} needs its own '
                        f'decoder (`neck.type`={head.neck_type}), got '
                        f'{type(neck).__name__}{where}')


def check_tokens(neck: nn.Module, encoder: EncoderGrid, where: str) -> None:
    """The decoder's ``num_patches`` and ``embed_dim`` against the encoder.

    Every decoder with a token grid and an input embedding (MAE's, MixMIM's,
    PR-MIM's, a LocalMIM scale decoder) is checked here.
    """
    if len(encoder.grids) != 1:
        raise ValueError(
            f'`neck.type`={type(neck).__name__!r} reads one encoder output, '
            f'the backbone gives {len(encoder.grids)} (`backbone.'
            f'out_indices`): use `neck.type`=\'LocalMIMNeck\'{where}')
    tokens, width = encoder.num_tokens, encoder.widths[0]
    if neck.num_patches != tokens:
        side = encoder.grids[0]
        raise ValueError(f'`neck.num_patches` must be the backbone\'s '
                         f'{tokens} patches ({side}x{side}={tokens} encoder '
                         f'tokens), got {neck.num_patches}{where}')
    embed = neck.decoder_embed.in_features
    if embed != width:
        raise ValueError(f'`neck.embed_dim` must be the backbone width '
                         f'{width} (the encoder output width {width}), got '
                         f'{embed}{where}')


def check_pixel_head(neck: nn.Module, head: nn.Module, encoder: EncoderGrid,
                     where: str) -> None:
    """An MAE-style pixel head and prediction against the encoder patches."""
    patch, channels = encoder.patch_size, encoder.in_channels
    if head.patch_size != patch:
        raise ValueError(f'`head.patch_size` must be the backbone patch size '
                         f'{patch}, got {head.patch_size}{where}')
    if head.in_channels != channels:
        raise ValueError(f'`head.in_channels` must be the backbone '
                         f'in_channels {channels}, got {head.in_channels}'
                         f'{where}')
    expected = patch * patch * channels
    if neck.decoder_pred.out_features != expected:
        raise ValueError(
            f'`neck.patch_size`**2 * `neck.in_chans` must be {expected} '
            f'(patch size {patch}, {channels} channels), got '
            f'{neck.decoder_pred.out_features}{where}')
