"""A false-negative guard for DNS(M,N): text filters the candidates, the current CF score decides.

The train loader draws M + K uniform non-interacted candidates per row (``guarddns_candidates`` = M + K)
and drops the K (``guarddns_drop``) whose item text is closest to the user's training items: the cosine
of the candidate's item vector to the user's taste, the normalised mean of the vectors of the items the
user trained on. :class:`GuardedDNSMNNegatives` then takes the top N (``dnsmn_n``) of the M kept by the
current CF score, exactly as DNS(M,N) does. Hard samplers pick false negatives (items the user would like
but never met) more often than uniform sampling does; an item whose text resembles the user's history is
a likelier false negative, so the guard removes it before the CF score can choose it.

With ``guarddns_drop: 0`` the sampler is DNS(M + K, N); ``guarddns_invert: true`` drops the K *farthest*
instead (the control: the same budget, filtered against the text signal).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from recbole_hnlm.config_values import config_value
from recbole_hnlm.negatives.hard import DNSMNNegatives, candidate_scores
from recbole_hnlm.negatives.item_vectors import configured_item_vectors


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
    ) -> None:
        if drop < 0:
            raise ValueError(f"config key 'guarddns_drop' must be >= 0, got {drop}")
        self.vectors = principal_projection(vectors, dims) if dims else vectors
        taste = torch.zeros(n_users, self.vectors.shape[1])
        taste.index_add_(0, torch.as_tensor(users, dtype=torch.long), self.vectors[torch.as_tensor(items)])
        # a row ranks its candidates by vector · taste: the taste's scale (its norm) changes no ranking
        self.taste = taste
        self.drop = drop
        self.invert = invert

    def closeness(self, users: np.ndarray, candidates: torch.Tensor) -> torch.Tensor:
        """``[B, C]`` closeness of each candidate's text to its user's taste (the inner product of the
        projected vectors: within a row, the order of the cosines)."""
        taste = self.taste[torch.as_tensor(users, dtype=torch.long)]
        return candidate_scores(taste, self.vectors, candidates)

    def filter(self, users: np.ndarray, candidates: torch.Tensor) -> torch.Tensor:
        """The ``[B, C - drop]`` candidates kept (the least close to the user's taste, or with ``invert`` the
        closest), in their drawn order."""
        if self.drop == 0:
            return candidates
        keep = candidates.shape[1] - self.drop
        if keep < 1:
            raise ValueError(
                f"guarddns_drop ({self.drop}) must be below guarddns_candidates ({candidates.shape[1]})"
            )
        closeness = self.closeness(users, candidates)
        kept = closeness.topk(keep, dim=1, largest=self.invert).indices.sort(dim=1).values
        return candidates.gather(1, kept)

    @classmethod
    def from_config(cls, config: Any, dataset: Any, users: np.ndarray, items: np.ndarray) -> TextGuard:
        drop = config_value(config, "guarddns_drop")
        if not isinstance(drop, int) or isinstance(drop, bool):
            raise ValueError(f"config key 'guarddns_drop' must be an integer, got {drop!r}")
        invert = bool(config_value(config, "guarddns_invert"))
        dims = config_value(config, "guarddns_dims")
        vectors = configured_item_vectors(config, dataset)
        return cls(vectors, users, items, dataset.user_num, drop, invert, int(dims) if dims else None)


class GuardedDNSMNNegatives(DNSMNNegatives):
    """DNS(M,N) over the candidates the :class:`TextGuard` kept (M + K drawn, K dropped)."""

    name = "guarddns"
    needs_candidates = True
    needs_text_guard = True
    needs_item_vectors = True
