"""A false-negative guard for DNS(M,N): text filters the candidates, the current CF score decides.

The train loader draws M + K uniform non-interacted candidates per row (``guarddns_candidates`` = M + K)
and keeps M of them (K = ``guarddns_drop``); :class:`GuardedDNSMNNegatives` then takes the top N
(``dnsmn_n``) of the M kept by the current CF score, exactly as DNS(M,N) does. Closeness is the cosine of
a candidate's item vector to the user's taste, the normalised mean of the vectors of the items the user
trained on. Hard samplers pick false negatives (items the user would like but never met) more often than
uniform sampling does; an item whose text resembles the user's history is a likelier false negative.

Two ways to keep M:

- per row (``guarddns_quantile: ~``): drop the K closest of the row. The K dropped are whichever drawn
  items are closest, so for each user a fixed half of the catalogue (with K = M) is almost never a
  negative, whatever its CF score: the measured loss of this mode is that shrunken support.
- catalogue veto (``guarddns_quantile: q``): veto the items above the user's q-quantile of closeness over
  the whole catalogue (the closest 1 − q share, e.g. 2%), and keep the first M unvetoed candidates in
  drawn order; the K spare draws replace vetoed ones. A row with fewer than M unvetoed candidates also
  keeps its first vetoed ones (counted in the report as ``text_guard_short_rows``).

``guarddns_drop: 0`` is DNS(M + K, N). Controls: ``guarddns_invert`` drops (vetoes) the farthest instead;
``guarddns_permute`` reads each item's text from a random other item (the same veto size and structure,
no longer tied to the item).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from recbole_hnlm.config_values import config_value
from recbole_hnlm.negatives.hard import DNSMNNegatives, candidate_scores
from recbole_hnlm.negatives.item_vectors import configured_item_vectors, text_permutation


def principal_projection(vectors: torch.Tensor, dims: int) -> torch.Tensor:
    """``vectors`` centred and projected on their ``dims`` principal directions ([PAD] row 0 left out of the
    fit). Centring shifts every candidate of a row by the same amount, so each row's order by inner
    product with a taste vector is kept up to the dropped directions; a ``[B, C, dims]`` gather per batch
    instead of ``[B, C, 384]`` is what keeps the guard's cost near DNS's."""
    if dims >= vectors.shape[1]:
        return vectors
    centred = vectors - vectors[1:].mean(dim=0, keepdim=True)
    _, _, basis = torch.linalg.svd(centred[1:], full_matrices=False)
    projected = centred @ basis[:dims].T
    projected[0] = 0.0
    return projected.contiguous()


def catalogue_thresholds(
    taste: torch.Tensor, vectors: torch.Tensor, quantile: float, invert: bool, chunk: int = 1 << 22
) -> torch.Tensor:
    """``[U]`` per-user closeness thresholds over the real items (rows 1..): with n real items and
    k = ceil(quantile · n), the k-th smallest closeness (an item above it is vetoed: the n − k closest),
    or with ``invert`` the (n − k + 1)-th smallest (an item below it is vetoed: the n − k farthest).
    Computed ``chunk`` closeness values at a time, so toys' 19k x 12k matrix is never held whole."""
    real = vectors[1:]
    n = real.shape[0]
    k = math.ceil(quantile * n)
    rank = n - k + 1 if invert else k
    step = max(1, chunk // max(n, 1))
    return torch.cat(
        [(taste[lo : lo + step] @ real.T).kthvalue(rank, dim=1).values for lo in range(0, len(taste), step)]
    )


class TextGuard:
    """The loader's side: keeps, of each row's candidates, the ones least like the user's history."""

    def __init__(
        self,
        vectors: torch.Tensor,
        users: np.ndarray,
        items: np.ndarray,
        n_users: int,
        drop: int,
        invert: bool = False,
        dims: int | None = None,
        quantile: float | None = None,
    ) -> None:
        if drop < 0:
            raise ValueError(f"config key 'guarddns_drop' must be >= 0, got {drop}")
        if quantile is not None and not 0.0 < quantile <= 1.0:
            raise ValueError(f"config key 'guarddns_quantile' must be in (0, 1] or ~, got {quantile}")
        self.vectors = principal_projection(vectors, dims) if dims else vectors
        taste = torch.zeros(n_users, self.vectors.shape[1])
        taste.index_add_(0, torch.as_tensor(users, dtype=torch.long), self.vectors[torch.as_tensor(items)])
        # a row ranks its candidates by vector · taste: the taste's scale (its norm) changes no ranking
        self.taste = taste
        self.drop = drop
        self.invert = invert
        self.threshold = (
            catalogue_thresholds(taste, self.vectors, quantile, invert) if quantile is not None else None
        )
        self.drawn = self.vetoed = self.short_rows = 0

    def closeness(self, users: np.ndarray, candidates: torch.Tensor) -> torch.Tensor:
        """``[B, C]`` closeness of each candidate's text to its user's taste (the inner product of the
        projected vectors: within a row, the order of the cosines)."""
        taste = self.taste[torch.as_tensor(users, dtype=torch.long)]
        return candidate_scores(taste, self.vectors, candidates)

    def filter(self, users: np.ndarray, candidates: torch.Tensor) -> torch.Tensor:
        """The ``[B, C - drop]`` candidates kept, in their drawn order: per row the least close to the
        user's taste (with ``invert`` the closest), or with a quantile the first unvetoed ones."""
        if self.drop == 0:
            return candidates
        keep = candidates.shape[1] - self.drop
        if keep < 1:
            raise ValueError(
                f"guarddns_drop ({self.drop}) must be below guarddns_candidates ({candidates.shape[1]})"
            )
        closeness = self.closeness(users, candidates)
        if self.threshold is None:
            kept = closeness.topk(keep, dim=1, largest=self.invert).indices.sort(dim=1).values
            return candidates.gather(1, kept)
        threshold = self.threshold[torch.as_tensor(users, dtype=torch.long)].unsqueeze(1)
        vetoed = closeness < threshold if self.invert else closeness > threshold
        # unvetoed first, each group in drawn order: the sort key is (vetoed, column)
        columns = torch.arange(candidates.shape[1])
        order = (vetoed.long() * candidates.shape[1] + columns).argsort(dim=1)[:, :keep].sort(dim=1).values
        self.drawn += vetoed.numel()
        self.vetoed += int(vetoed.sum())
        self.short_rows += int((vetoed.shape[1] - vetoed.sum(dim=1) < keep).sum())
        return candidates.gather(1, order)

    def report(self) -> dict[str, Any]:
        """With a quantile: the share of drawn candidates vetoed and the rows that kept a vetoed one."""
        if self.threshold is None:
            return {}
        return {
            "text_guard_vetoed_share": self.vetoed / self.drawn if self.drawn else None,
            "text_guard_short_rows": self.short_rows,
        }

    @classmethod
    def from_config(cls, config: Any, dataset: Any, users: np.ndarray, items: np.ndarray) -> TextGuard:
        drop = config_value(config, "guarddns_drop")
        if not isinstance(drop, int) or isinstance(drop, bool):
            raise ValueError(f"config key 'guarddns_drop' must be an integer, got {drop!r}")
        quantile = config_value(config, "guarddns_quantile")
        if quantile is not None and (isinstance(quantile, bool) or not isinstance(quantile, (int, float))):
            raise ValueError(f"config key 'guarddns_quantile' must be a number or ~, got {quantile!r}")
        invert = bool(config_value(config, "guarddns_invert"))
        dims = config_value(config, "guarddns_dims")
        vectors = configured_item_vectors(config, dataset)
        if config_value(config, "guarddns_permute"):
            vectors = vectors[text_permutation(vectors.shape[0], int(config_value(config, "seed")))]
        quantile = float(quantile) if quantile is not None else None
        return cls(
            vectors, users, items, dataset.user_num, drop, invert, int(dims) if dims else None, quantile
        )


class GuardedDNSMNNegatives(DNSMNNegatives):
    """DNS(M,N) over the candidates the :class:`TextGuard` kept (M + K drawn, K dropped)."""

    name = "guarddns"
    needs_candidates = True
    needs_text_guard = True
    needs_item_vectors = True
