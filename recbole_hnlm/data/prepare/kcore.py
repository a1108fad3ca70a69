"""Iterated k-core filtering on integer-coded interactions, vectorised with numpy."""

from __future__ import annotations

import numpy as np


def kcore_mask(
    users: np.ndarray, items: np.ndarray, user_k: int, item_k: int | None = None
) -> tuple[np.ndarray, int]:
    """Mask of interactions kept by the iterated k-core, and the number of passes it took.

    Repeats "drop users with < ``user_k`` and items with < ``item_k`` interactions" until nothing
    changes (the fixed point: every kept user and item has at least k kept interactions). ``k <= 1``
    keeps everything. Codes must be non-negative integers.
    """
    item_k = user_k if item_k is None else item_k
    keep = np.ones(users.shape[0], dtype=bool)
    if max(user_k, item_k) <= 1 or users.size == 0:
        return keep, 0
    n_users = int(users.max()) + 1
    n_items = int(items.max()) + 1
    idx = np.arange(users.shape[0])
    passes = 0
    while idx.size:
        passes += 1
        u, i = users[idx], items[idx]
        ucount = np.bincount(u, minlength=n_users)
        icount = np.bincount(i, minlength=n_items)
        ok = (ucount[u] >= user_k) & (icount[i] >= item_k)
        if ok.all():
            break
        idx = idx[ok]
    keep[:] = False
    keep[idx] = True
    return keep, passes
