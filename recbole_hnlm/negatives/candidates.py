"""Vectorised draws of non-interacted candidate items, the input of every in-loss hard-negative sampler."""

from __future__ import annotations

import numpy as np
import torch


class CandidateSampler:
    """Draws ``[B, M]`` items uniformly from ``1..n_items-1`` that the user has no training interaction with.

    Membership is checked against a sorted array of ``user * n_items + item`` keys of the training
    interactions (one ``searchsorted`` per round); hits are redrawn until none is left. Uses NumPy's global
    generator, which RecBole's ``init_seed`` seeds, so runs are reproducible under a seed.
    """

    max_rounds = 1000

    def __init__(self, user_ids: np.ndarray, item_ids: np.ndarray, n_items: int, num: int) -> None:
        if num < 1:
            raise ValueError(f"number of candidates must be >= 1, got {num}")
        self.n_items = int(n_items)
        self.num = int(num)
        keys = np.asarray(user_ids, dtype=np.int64) * self.n_items + np.asarray(item_ids, dtype=np.int64)
        self._keys = np.unique(keys)

    def exclude(self, user_ids: np.ndarray, item_ids: np.ndarray) -> None:
        """Never draw these (user, item) pairs either (the diagnostic oracle: held-out positives)."""
        keys = np.asarray(user_ids, dtype=np.int64) * self.n_items + np.asarray(item_ids, dtype=np.int64)
        self._keys = np.union1d(self._keys, keys)

    def is_positive(self, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        keys = user_ids.astype(np.int64) * self.n_items + item_ids.astype(np.int64)
        pos = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
        return self._keys[pos] == keys

    def sample(self, user_ids: np.ndarray) -> torch.Tensor:
        users = np.asarray(user_ids, dtype=np.int64)[:, None].repeat(self.num, axis=1)
        items = np.random.randint(1, self.n_items, size=users.shape)
        return torch.from_numpy(self.redraw_positives(users, items))

    def redraw_positives(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """``items`` (same shape as ``users``) with every training positive of its user redrawn uniformly
        from the non-interacted items, in place; returns ``items``."""
        hits = self.is_positive(users, items)
        for _ in range(self.max_rounds):
            if not hits.any():
                return items
            items[hits] = np.random.randint(1, self.n_items, size=int(hits.sum()))
            hits[hits] = self.is_positive(users[hits], items[hits])
        stuck = np.unique(users[hits])
        raise ValueError(
            f"could not draw non-interacted candidates for users {stuck[:5].tolist()} after "
            f"{self.max_rounds} rounds: they have interacted with (almost) every item"
        )
