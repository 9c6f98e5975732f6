# Copyright (c) OpenMMLab. All rights reserved.
from typing import Dict, Optional, Tuple

import torch
from mmpretrain.models import MAEPretrainDecoder
from mmpretrain.registry import MODELS
from torch import nn

from ..utils.checks import check_choice, check_divisible, check_square
from ..utils.decoder import EncoderGrid, ReconstructionDecoder
from ..utils.furthest_sampling import (furthest_sampling, grid_sq_distances,
                                       min_sq_distance_to_set, random_sampling)


def _ascending_true_indices(flags: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the ``True`` entries of every row, in ascending order.

    Every row must hold exactly ``count`` ``True`` entries.
    """
    # a stable descending sort keeps equal keys in index order
    order = torch.sort(
        flags.to(torch.int8), dim=1, descending=True, stable=True).indices
    return order[:, :count]


class PartialReconstructionMixin(ReconstructionDecoder):
    """Partial decoding with progressive reconstruction, for MAE decoders.

    The one implementation of PR-MIM's decoder side, shared by
    :class:`PRMIMPretrainDecoder` and the MixMIM one: it owns and validates
    the PR-MIM arguments, chooses the kept tokens (:meth:`select_decoded`),
    runs the host's decoder blocks on the decoded tokens only and predicts
    the thrown ones by the progressive path (:meth:`decode_partial`). The
    host decoder (listed after the mixin) provides ``mask_token``,
    ``decoder_pos_embed``, ``decoder_blocks``, ``decoder_norm``,
    ``decoder_pred`` and ``num_patches``.

    Args:
        throw_ratio (float): Fraction of all tokens that do not enter the
            decoder, ``0 <= throw_ratio < 1``; the algorithm checks it
            against its masking with :meth:`check_throw`. Defaults to 0.5.
        sampling (str): How the kept tokens are chosen, ``'furthest'`` or
            ``'random'``. Defaults to ``'furthest'``.
        thrown_path (str): ``'progressive'`` or ``'none'``.
            Defaults to ``'progressive'``.
        num_waves (int): Waves of the progressive reconstruction, >= 1.
            Defaults to 2.
        k (int): Reconstructed neighbours mixed per thrown token, >= 1.
            Defaults to 4.
        num_patches (int): Tokens the decoder sees, a square number (square
            grid). Defaults to 196.
        **kwargs: The arguments of the host decoder.
    """

    SAMPLINGS = ('furthest', 'random')
    THROWN_PATHS = ('progressive', 'none')

    def __init__(self,
                 throw_ratio: float = 0.5,
                 sampling: str = 'furthest',
                 thrown_path: str = 'progressive',
                 num_waves: int = 2,
                 k: int = 4,
                 num_patches: int = 196,
                 **kwargs) -> None:
        is_number = isinstance(
            throw_ratio, (int, float)) and not isinstance(throw_ratio, bool)
        if not is_number or not 0 <= throw_ratio < 1:
            raise ValueError('`throw_ratio` must be a number with '
                             f'0 <= throw_ratio < 1, got {throw_ratio!r}')
        check_choice('sampling', sampling, self.SAMPLINGS)
        check_choice('thrown_path', thrown_path, self.THROWN_PATHS)
        for name, value in (('num_waves', num_waves), ('k', k)):
            # bool is an int subclass; reject it explicitly
            valid = isinstance(value, int) and not isinstance(value, bool)
            if not valid or value < 1:
                raise ValueError(
                    f'`{name}` must be an int >= 1, got {value!r}')
        side = check_square('num_patches', num_patches)
        super().__init__(num_patches=num_patches, **kwargs)
        self.throw_ratio = float(throw_ratio)
        self.sampling = sampling
        self.thrown_path = thrown_path
        self.num_waves = num_waves
        self.k = k
        self.grid_size = (side, side)
        # a constant of the grid, not a parameter: kept out of checkpoints
        self.register_buffer(
            'grid_sq_dist',
            grid_sq_distances(self.grid_size),
            persistent=False)

    def check_throw(self, fewest: int, context: str, where: str = '') -> None:
        """Check ``throw_ratio`` and ``k`` against the encoder's masking.

        Called at build time by the algorithm, which knows the masking.

        Args:
            fewest (int): The fewest of the ``num_patches`` tokens that one
                sample (or branch) may have to reconstruct.
            context (str): The encoder settings giving ``fewest``, e.g.
                ``'mask_ratio=0.75'``.
            where (str): Appended to the message to locate the decoder, e.g.
                ``' (block 2)'``. Defaults to ``''``.

        Raises:
            ValueError: If no token to reconstruct would be left for the
                decoder, or ``k`` exceeds the decoded tokens.
        """
        L = self.num_patches
        num_thrown = self.num_thrown()
        if num_thrown >= fewest:
            # int(L * t) < fewest  <=>  t < fewest / L
            raise ValueError(
                f'`throw_ratio`={self.throw_ratio} throws {num_thrown} of '
                f'the {fewest} tokens a sample may reconstruct ({context}), '
                f'leaving none for the decoder: use 0 <= throw_ratio < '
                f'{fewest}/{L} = {fewest / L:.4g}{where}')
        num_decoded = L - num_thrown
        if num_thrown > 0 and self.reconstructs_thrown and \
                self.k > num_decoded:
            raise ValueError(f'`k`={self.k} exceeds the {num_decoded} decoded '
                             'tokens a thrown token can mix; use 1 <= k <= '
                             f'{num_decoded}{where}')

    def check_head(self, head: nn.Module, where: str) -> None:
        """A head that supervises thrown tokens."""
        from ..heads.prmim_head import PRMIMHeadMixin  # heads import necks
        if not isinstance(head, PRMIMHeadMixin):
            raise TypeError(
                'a partial-reconstruction neck needs a head that supervises '
                f'thrown tokens (`head.type`={self.head_type!r}), got '
                f'{type(head).__name__}{where}')

    def check_grid(self, head: nn.Module, encoder: EncoderGrid,
                   where: str) -> None:
        """The host's checks and :meth:`check_throw` against the encoder's
        masking."""
        super().check_grid(head, encoder, where)
        self.check_throw(encoder.fewest_masked, encoder.masking, where)

    def patch_pos_embed(self) -> torch.Tensor:
        """``(L, C)`` decoder position embedding of the patch tokens."""
        pos = self.decoder_pos_embed[0]
        # MAE's embedding has a leading [CLS] entry, MixMIM's has none
        return pos[1:] if pos.shape[0] == self.num_patches + 1 else pos

    def num_thrown(self, num_patches: Optional[int] = None) -> int:
        """Number of masked tokens that skip the decoder transformer."""
        if num_patches is None:
            num_patches = self.num_patches
        return int(num_patches * self.throw_ratio)

    @property
    def reconstructs_thrown(self) -> bool:
        """Whether thrown tokens get a prediction (and can be supervised)."""
        return self.thrown_path != 'none'

    def select_decoded(self, visible: torch.Tensor) -> torch.Tensor:
        """Choose the tokens that enter the decoder.

        Every row keeps its visible tokens and ``num_masked - num_thrown``
        of its masked ones, chosen by ``sampling`` (furthest sampling is
        seeded by the visible cells).

        Args:
            visible (torch.Tensor): ``(N, L)`` bool, visible tokens; every
                row has the same number of them.

        Returns:
            torch.Tensor: ``(N, L)`` bool, the decoded tokens.
        """
        N, L = visible.shape
        num_masked = L - int(visible[0].sum())
        num_thrown = self.num_thrown(L)
        num_kept = num_masked - num_thrown
        if num_kept < 1:
            raise ValueError(
                f'`throw_ratio`={self.throw_ratio} throws {num_thrown} of '
                f'the {num_masked} tokens to reconstruct: none is left for '
                'the decoder; use throw_ratio < mask_ratio')
        if self.sampling == 'furthest':
            kept = furthest_sampling(~visible, visible, num_kept,
                                     self.grid_sq_dist)[0]
        else:
            kept = random_sampling(~visible, num_kept)
        in_decoder = visible.clone()
        rows = torch.arange(N, device=visible.device)[:, None]
        in_decoder[rows, kept] = True
        return in_decoder

    def decode_partial(self,
                       tokens: torch.Tensor,
                       in_decoder: torch.Tensor,
                       prefix: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Decode the chosen tokens and predict the thrown ones.

        Args:
            tokens (torch.Tensor): ``(N, L, C)`` decoder input of every token
                in patch order (mask tokens where masked), position
                embedding added.
            in_decoder (torch.Tensor): ``(N, L)`` bool from
                :meth:`select_decoded`.
            prefix (torch.Tensor, optional): ``(N, 1, C)`` token put before
                the decoded ones and dropped after the blocks (MAE's [CLS]).

        Returns:
            torch.Tensor: ``(N, L, P)`` predictions in patch order: decoder
            predictions for the decoded tokens, progressive-path ones for
            the thrown tokens (zeros with ``thrown_path='none'``).
        """
        N, L, C = tokens.shape
        num_thrown = self.num_thrown(L)
        # decoded tokens stay in patch order: with throw_ratio=0 this is
        # exactly the host decoder's input
        dec_pos = _ascending_true_indices(in_decoder, L - num_thrown)
        seq = tokens.gather(1, dec_pos[:, :, None].expand(-1, -1, C))
        if prefix is not None:
            seq = torch.cat([prefix, seq], dim=1)
        for blk in self.decoder_blocks:
            seq = blk(seq)
        feats = seq if prefix is None else seq[:, prefix.shape[1]:, :]
        pred = self.decoder_pred(self.decoder_norm(feats))
        if num_thrown == 0:
            return pred

        thrown_pos = _ascending_true_indices(~in_decoder, num_thrown)
        if self.reconstructs_thrown:
            thrown_feats = self.reconstruct_thrown(feats, dec_pos, thrown_pos)
            # shared final norm and prediction head
            thrown_pred = self.decoder_pred(self.decoder_norm(thrown_feats))
        else:
            # plain partial reconstruction: no prediction, no gradient
            thrown_pred = pred.new_zeros(N, num_thrown, pred.shape[-1])
        all_pos = torch.cat([dec_pos, thrown_pos], dim=1)
        all_pred = torch.cat([pred, thrown_pred], dim=1)
        # back to patch order (all_pos is a permutation of each row)
        return all_pred.gather(
            1,
            all_pos.argsort(dim=1)[:, :, None].expand(-1, -1,
                                                      all_pred.shape[-1]))

    def reconstruct_thrown(self, feats: torch.Tensor, feat_pos: torch.Tensor,
                           thrown_pos: torch.Tensor) -> torch.Tensor:
        """Progressive, attention-free reconstruction of thrown tokens.

        Args:
            feats (torch.Tensor): ``(B, N, C)`` pre-norm decoder output
                features of the decoded patch tokens (no [CLS]).
            feat_pos (torch.Tensor): ``(B, N)`` their patch indices.
            thrown_pos (torch.Tensor): ``(B, T)`` patch indices of the thrown
                tokens.

        Returns:
            torch.Tensor: ``(B, T, C)`` pre-norm features of the thrown
            tokens, in the order of ``thrown_pos``.
        """
        B, T = thrown_pos.shape
        L = self.grid_sq_dist.shape[0]
        sq_dist = self.grid_sq_dist
        batch = torch.arange(B, device=thrown_pos.device)[:, None]

        # waves: nearest-to-the-decoded-set first (ties by patch index)
        decoded = torch.zeros(B, L, dtype=torch.bool, device=thrown_pos.device)
        decoded[batch, feat_pos] = True
        d0 = min_sq_distance_to_set(decoded, sq_dist).gather(1, thrown_pos)
        order = torch.sort(d0, dim=1, stable=True).indices
        waves = torch.tensor_split(
            thrown_pos.gather(1, order), self.num_waves, dim=1)

        pos_embed = self.patch_pos_embed().to(feats.dtype)
        out = []
        for query in waves:
            if query.shape[1] == 0:
                continue
            k = min(self.k, feat_pos.shape[1])
            # (B, Tw, N) squared distances from queries to the candidates;
            # the stable sort breaks ties by candidate order (deterministic)
            qd = sq_dist[query[:, :, None], feat_pos[:, None, :]]
            nn_sq, nn_idx = torch.sort(qd, dim=-1, stable=True)
            nn_sq, nn_idx = nn_sq[..., :k], nn_idx[..., :k]
            # inverse-distance weights; distinct cells are >= 1 apart
            w = nn_sq.sqrt().reciprocal()
            w = w / w.sum(-1, keepdim=True)
            # dense (B, Tw, N) weights so the mix is one bmm, no
            # (B, Tw, k, C) gather buffer
            weights = feats.new_zeros(qd.shape).scatter_(
                -1, nn_idx, w.to(feats.dtype))
            mixed = torch.bmm(weights, feats)
            wave_feats = mixed + self.mask_token + pos_embed[query]
            out.append(wave_feats)
            # this wave becomes a neighbour candidate for the next ones
            feats = torch.cat([feats, wave_feats], dim=1)
            feat_pos = torch.cat([feat_pos, query], dim=1)

        thrown_feats = torch.cat(out, dim=1)
        # back to the order of ``thrown_pos``
        return thrown_feats.gather(
            1,
            order.argsort(dim=1)[:, :, None].expand(-1, -1,
                                                    thrown_feats.shape[-1]))


@MODELS.register_module()
class PRMIMPretrainDecoder(PartialReconstructionMixin, MAEPretrainDecoder):
    """Partial MAE decoder with progressive reconstruction of thrown tokens.

    Implementation of `PR-MIM: Delving Deeper into Partial Reconstruction in
    Masked Image Modeling <https://arxiv.org/abs/2411.15746>`_.

    The decoder transformer runs on the [CLS] token, the visible tokens and
    only ``num_masked - num_thrown`` masked tokens ("kept"), where
    ``num_thrown = int(num_patches * throw_ratio)``. With
    ``sampling='furthest'`` the kept tokens are chosen by farthest-point
    sampling on the patch grid among the masked cells, seeded by the visible
    cells, so every thrown cell lies close to a decoded one.

    The thrown tokens are then reconstructed without attention
    (``thrown_path='progressive'``): they are ordered by their distance to
    the decoded set and split into ``num_waves`` equal waves. In each wave a
    thrown token's feature is the inverse-distance-weighted mix of the
    pre-norm decoder features of its ``k`` nearest already-reconstructed
    tokens (decoded tokens first, then tokens of earlier waves), plus the
    mask token and its own position embedding; it then goes through the
    decoder's final norm and the shared prediction head. The only parameters
    are those of :class:`MAEPretrainDecoder`. ``thrown_path='none'`` is plain
    partial reconstruction (thrown tokens get no prediction).

    Args:
        **kwargs: The PR-MIM arguments of
            :class:`PartialReconstructionMixin` (``throw_ratio``,
            ``sampling``, ``thrown_path``, ``num_waves``, ``k``) and those of
            :class:`MAEPretrainDecoder` (``num_patches`` a square number).
    """

    head_type = 'PRMIMPretrainHead'

    def __init__(self, **kwargs) -> None:
        check_divisible('decoder_embed_dim',
                        kwargs.get('decoder_embed_dim', 512),
                        kwargs.get('decoder_num_heads', 16),
                        'decoder_num_heads')
        super().__init__(**kwargs)

    def forward(
        self, x: torch.Tensor, ids_restore: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Partial decoding plus reconstruction of the thrown tokens.

        Args:
            x (torch.Tensor): Encoder output ``(B, 1 + V, C_enc)`` ([CLS]
                first), as returned by :class:`MAEViT`.
            ids_restore (torch.Tensor): ``(B, L)`` ids to restore the
                original patch order; patch ``j`` is visible iff
                ``ids_restore[:, j] < V``.

        Returns:
            Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:

            - ``pred`` (torch.Tensor): ``(B, L, P)`` predictions in patch
              order: decoder predictions for visible and kept tokens,
              thrown-path predictions for thrown tokens (zeros with
              ``thrown_path='none'``).
            - ``kept_mask`` (torch.Tensor): ``(B, L)``, 1 for masked tokens
              that went through the decoder.
            - ``thrown_mask`` (torch.Tensor): ``(B, L)``, 1 for thrown
              tokens.
        """
        B, L = ids_restore.shape
        num_visible = x.shape[1] - 1
        visible = ids_restore < num_visible
        in_decoder = self.select_decoded(visible)

        x = self.decoder_embed(x)
        # every patch token in patch order, as in MAE (mask tokens at the
        # masked cells), with the position embedding
        mask_tokens = self.mask_token.repeat(B, L - num_visible, 1)
        tokens = torch.cat([x[:, 1:, :], mask_tokens], dim=1)
        tokens = torch.gather(
            tokens,
            dim=1,
            index=ids_restore.unsqueeze(-1).repeat(1, 1, x.shape[2]))
        tokens = tokens + self.decoder_pos_embed[:, 1:, :]
        cls_token = x[:, :1, :] + self.decoder_pos_embed[:, :1, :]

        pred = self.decode_partial(tokens, in_decoder, prefix=cls_token)
        kept_mask = (~visible & in_decoder).to(pred.dtype)
        thrown_mask = (~in_decoder).to(pred.dtype)
        return pred, kept_mask, thrown_mask

    def reconstruction_loss(self, head: nn.Module, latent: torch.Tensor,
                            ids_restore: torch.Tensor, mask: torch.Tensor,
                            inputs: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Partial decoding and the PR-MIM loss.

        Returns:
            Dict[str, torch.Tensor]: The head's ``loss_kept`` / ``mse_kept``
            and, when thrown tokens are supervised, ``loss_thrown`` /
            ``mse_thrown``.
        """
        pred, kept_mask, thrown_mask = self(latent, ids_restore)
        supervise_thrown = self.reconstructs_thrown and \
            self.num_thrown(ids_restore.shape[1]) > 0
        return head.loss(pred, inputs, kept_mask,
                         thrown_mask if supervise_thrown else None)
